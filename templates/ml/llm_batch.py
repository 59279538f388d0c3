"""Batch LLM inference and evaluation: each task answers its shard of a JSONL prompt file.

  python llm_batch.py            # params: model, prompts ({"prompt", "answer"?} per line), max_new_tokens
  python llm_batch.py --smoke    # a tiny random Llama with a byte tokenizer, no download

Task i of n takes every n-th prompt (SPAWN_TASK_INDEX / SPAWN_TASK_COUNT), so a sweep with
`repeat: n` shards the file. Answers are appended to SPAWN_OUTPUT_DIR/answers.jsonl; the number of
prompts done is the checkpoint, so a retry continues where the last attempt stopped. Where a
prompt has an "answer", exact match is scored. Metrics: done, exact_match, tokens_per_s.
"""

import json
import os
import time

import torch

import spawn_task

SMOKE = spawn_task.smoke()
p = spawn_task.params(
    {
        "model": "Qwen/Qwen2.5-0.5B-Instruct",
        "prompts": "data/prompts.jsonl",
        "max_new_tokens": 8 if SMOKE else 256,
        "batch_size": 4 if SMOKE else 16,
        "seed": 0,
    }
)
torch.manual_seed(p["seed"])
device = spawn_task.device()
shard, shards = int(os.environ.get("SPAWN_TASK_INDEX", "0")), int(os.environ.get("SPAWN_TASK_COUNT", "1"))

if SMOKE:
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=258, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                         bos_token_id=256, eos_token_id=257, pad_token_id=257))
    encode = lambda texts: [[256] + list(t.encode()) for t in texts]  # noqa: E731 - a byte tokenizer
    decode = lambda ids: bytes(i for i in ids if i < 256).decode(errors="replace")  # noqa: E731
    rows = [{"prompt": f"What is {a} + {a}?", "answer": str(2 * a)} for a in range(12)]
else:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(p["model"], padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(p["model"], torch_dtype=torch.bfloat16)
    encode = lambda texts: [tokenizer(t)["input_ids"] for t in texts]  # noqa: E731
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    rows = [json.loads(line) for line in open(p["prompts"])]
model.to(device).eval()
pad = model.config.pad_token_id if model.config.pad_token_id is not None else model.config.eos_token_id

mine = rows[shard::shards]
progress_file = spawn_task.checkpoint_dir() / "progress.json"
progress = json.loads(progress_file.read_text()) if progress_file.exists() else {"done": 0, "correct": 0, "scored": 0}
answers = open(spawn_task.output_dir() / "answers.jsonl", "a")
t0, generated = time.time(), 0
for start in range(progress["done"], len(mine), p["batch_size"]):
    batch = mine[start : start + p["batch_size"]]
    ids = encode([r["prompt"] for r in batch])
    width = max(len(x) for x in ids)
    input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=device)
    attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=device)
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=p["max_new_tokens"],
                             do_sample=False, pad_token_id=pad)
    for row, seq in zip(batch, out[:, width:].tolist()):
        text = decode(seq).strip()
        generated += len(seq)
        answers.write(json.dumps({**row, "output": text}) + "\n")
        if "answer" in row:
            progress["scored"] += 1
            progress["correct"] += int(text == str(row["answer"]).strip())
    answers.flush()
    progress["done"] = start + len(batch)
    progress_file.write_text(json.dumps(progress))
    spawn_task.metric(done=progress["done"], exact_match=round(progress["correct"] / max(1, progress["scored"]), 4),
                      tokens_per_s=round(generated / (time.time() - t0), 1))
