"""LoRA / QLoRA fine-tuning of a causal language model with peft, on a JSONL file of {"text"} rows.

  python lora_finetune.py                 # params: model, data, rank, alpha, quantize (none | 4bit), ...
  python lora_finetune.py --smoke         # a tiny random Llama, LoRA on q/v projections, no download

QLoRA (quantize: 4bit) loads the base model in 4-bit NF4 with bitsandbytes. Only the adapter is
trained and checkpointed (SPAWN_CHECKPOINT_DIR), so checkpoints stay small; a retry resumes from
the last one. Metrics: step, loss, trainable_params. Output: the adapter (peft save_pretrained).
"""

import json

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

import spawn_task

SMOKE = spawn_task.smoke()
p = spawn_task.params(
    {
        "model": "Qwen/Qwen2.5-0.5B",
        "data": "data/train.jsonl",
        "quantize": "none",
        "rank": 8,
        "alpha": 16,
        "dropout": 0.05,
        "target_modules": ["q_proj", "v_proj"],
        "lr": 2e-4,
        "steps": 20 if SMOKE else 1000,
        "batch_size": 4 if SMOKE else 8,
        "max_length": 32 if SMOKE else 512,
        "checkpoint_every": 10 if SMOKE else 100,
        "seed": 0,
    }
)
if p["quantize"] not in ("none", "4bit"):
    raise SystemExit(f"quantize must be none or 4bit, got {p['quantize']!r}")
torch.manual_seed(p["seed"])
device = spawn_task.device()

if SMOKE:
    base = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128))
    # Shifted repeating patterns: something for the adapter to learn, with nothing to download.
    sequences = torch.arange(p["max_length"]).repeat(64, 1) % 17 + torch.randint(0, 200, (64, 1))
else:
    tokenizer = AutoTokenizer.from_pretrained(p["model"])
    kwargs = {}
    if p["quantize"] == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=torch.bfloat16)
    base = AutoModelForCausalLM.from_pretrained(p["model"], torch_dtype=torch.bfloat16, **kwargs)
    if p["quantize"] == "4bit":
        from peft import prepare_model_for_kbit_training

        base = prepare_model_for_kbit_training(base)
    texts = [json.loads(line)["text"] for line in open(p["data"])]
    enc = tokenizer(texts, truncation=True, max_length=p["max_length"], padding="max_length", return_tensors="pt")
    sequences = enc["input_ids"]

model = get_peft_model(base, LoraConfig(r=p["rank"], lora_alpha=p["alpha"], lora_dropout=p["dropout"],
                                        target_modules=p["target_modules"], task_type="CAUSAL_LM"))
if p["quantize"] == "none":
    model.to(device)
trainable = sum(x.numel() for x in model.parameters() if x.requires_grad)
optimizer = torch.optim.AdamW([x for x in model.parameters() if x.requires_grad], lr=p["lr"])

start = 0
state = spawn_task.load_checkpoint(map_location=device)
if state:
    set_peft_model_state_dict(model, state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    start = state["step"]

generator = torch.Generator().manual_seed(p["seed"])
model.train()
for step in range(start + 1, p["steps"] + 1):
    rows = torch.randint(0, len(sequences), (p["batch_size"],), generator=generator)
    batch = sequences[rows].to(device)
    loss = model(input_ids=batch, labels=batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if step % 5 == 0 or step == p["steps"]:
        spawn_task.metric(step=step, loss=round(loss.item(), 5), trainable_params=trainable)
    if step % p["checkpoint_every"] == 0 or step == p["steps"]:
        spawn_task.save_checkpoint({"adapter": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(), "step": step})

model.save_pretrained(spawn_task.output_dir() / "adapter")
