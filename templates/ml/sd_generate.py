"""Stable Diffusion image generation: each task renders its prompts, several seeds each.

  python sd_generate.py            # diffusers StableDiffusionPipeline (params: model, prompts, steps, ...)
  python sd_generate.py --smoke    # a tiny random text encoder + denoiser + decoder, no download

The smoke model has the same shape of computation as Stable Diffusion — text encoder, latent
denoiser with cross-attention, DDIM sampling with classifier-free guidance, decoder — at a size
that runs in seconds; its images are noise. Images go to SPAWN_OUTPUT_DIR; the list of finished
images is the checkpoint, so a retry renders only what is missing. Metrics: images, s_per_image.
"""

import json
import time

import torch
import torch.nn as nn

import spawn_task

SMOKE = spawn_task.smoke()
p = spawn_task.params(
    {
        "model": "stabilityai/stable-diffusion-2-1-base",
        "prompts": ["a lighthouse on a cliff at dawn, oil painting", "a red fox in fresh snow, photograph"],
        "images_per_prompt": 2,
        "steps": 4 if SMOKE else 30,
        "guidance": 7.5,
        "size": 64 if SMOKE else 512,
        "seed": 0,
    }
)
device = spawn_task.device()
out = spawn_task.output_dir()
done_file = spawn_task.checkpoint_dir() / "done.json"
done = set(json.loads(done_file.read_text())) if done_file.exists() else set()


class TinyDiffusion(nn.Module):
    """Text encoder (CLIP architecture), a cross-attention denoiser on 4-channel latents, a decoder."""

    def __init__(self):
        super().__init__()
        from transformers import CLIPTextConfig, CLIPTextModel

        self.text = CLIPTextModel(CLIPTextConfig(vocab_size=256, hidden_size=32, intermediate_size=64,
                                                 num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77))
        self.inp = nn.Conv2d(4 + 1, 32, 3, padding=1)
        self.attn = nn.MultiheadAttention(32, 2, batch_first=True)
        self.outp = nn.Conv2d(32, 4, 3, padding=1)
        self.decode = nn.Sequential(nn.Upsample(scale_factor=8), nn.Conv2d(4, 3, 3, padding=1), nn.Tanh())

    def encode(self, prompts):
        ids = torch.tensor([[min(b, 255) for b in s.encode()[:77]] + [0] * (77 - len(s.encode()[:77])) for s in prompts])
        return self.text(input_ids=ids.to(self.inp.weight.device)).last_hidden_state

    def denoise(self, latents, t, context):
        b, _, h, w = latents.shape
        x = self.inp(torch.cat([latents, torch.full((b, 1, h, w), float(t), device=latents.device) / 1000], 1))
        seq = x.flatten(2).transpose(1, 2)
        seq = seq + self.attn(seq, context, context)[0]
        return self.outp(seq.transpose(1, 2).reshape(b, 32, h, w))

    @torch.no_grad()
    def __call__(self, prompt, generator):
        cond, uncond = self.encode([prompt]), self.encode([""])
        alphas = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0)
        latents = torch.randn((1, 4, p["size"] // 8, p["size"] // 8), generator=generator).to(device)
        timesteps = torch.linspace(999, 0, p["steps"]).long()
        for i, t in enumerate(timesteps):
            eps_c, eps_u = self.denoise(latents, t, cond), self.denoise(latents, t, uncond)
            eps = eps_u + p["guidance"] * (eps_c - eps_u)
            a = alphas[t].to(device)
            a_next = alphas[timesteps[i + 1]].to(device) if i + 1 < len(timesteps) else torch.tensor(1.0, device=device)
            x0 = (latents - (1 - a).sqrt() * eps) / a.sqrt()
            latents = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
        image = ((self.decode(latents)[0].clamp(-1, 1) + 1) * 127.5).byte().permute(1, 2, 0).cpu().numpy()
        from PIL import Image

        return Image.fromarray(image)


if SMOKE:
    torch.manual_seed(p["seed"])
    pipe = TinyDiffusion().to(device)
else:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        p["model"], torch_dtype=torch.float16 if device.type == "cuda" else torch.float32
    ).to(device)

t0, rendered = time.time(), 0
for i, prompt in enumerate(p["prompts"]):
    for k in range(p["images_per_prompt"]):
        name = f"prompt{i:03d}-seed{p['seed'] + k}.png"
        if name in done:
            continue
        generator = torch.Generator().manual_seed(p["seed"] + k)
        if SMOKE:
            image = pipe(prompt, generator)
        else:
            image = pipe(prompt, num_inference_steps=p["steps"], guidance_scale=p["guidance"], height=p["size"],
                         width=p["size"], generator=generator).images[0]
        image.save(out / name)
        done.add(name)
        done_file.write_text(json.dumps(sorted(done)))
        rendered += 1
        spawn_task.metric(images=len(done), s_per_image=round((time.time() - t0) / rendered, 3))
