"""Hugging Face fine-tuning: a sequence classifier trained on a JSONL file of {"text", "label"} rows.

  python hf_finetune.py            # model from the Hub (params: model, data, lr, epochs, ...)
  python hf_finetune.py --smoke    # a tiny randomly initialised BERT on random tokens, no download

Checkpoints (model, optimizer, position) go to SPAWN_CHECKPOINT_DIR every `checkpoint_every` steps
and a retry resumes there. Metrics: epoch, step, loss, accuracy. Output: the fine-tuned model.
"""

import json
import random

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

import spawn_task

SMOKE = spawn_task.smoke()
p = spawn_task.params(
    {
        "model": "distilbert-base-uncased",
        "data": "data/train.jsonl",
        "eval_fraction": 0.1,
        "labels": 2,
        "lr": 5e-5,
        "epochs": 2 if SMOKE else 3,
        "batch_size": 8 if SMOKE else 32,
        "max_length": 32 if SMOKE else 256,
        "checkpoint_every": 5 if SMOKE else 500,
        "seed": 0,
    }
)
random.seed(p["seed"])
torch.manual_seed(p["seed"])
device = spawn_task.device()

if SMOKE:
    config = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=p["labels"])
    model = BertForSequenceClassification(config)
    # Random token ids labelled by their first token: a learnable task with nothing to download.
    ids = torch.randint(1, 128, (96, p["max_length"]))
    labels = (ids[:, 0] % p["labels"]).tolist()
    rows = [{"input_ids": i, "attention_mask": torch.ones_like(i), "label": y} for i, y in zip(ids, labels)]
else:
    tokenizer = AutoTokenizer.from_pretrained(p["model"])
    model = AutoModelForSequenceClassification.from_pretrained(p["model"], num_labels=p["labels"])
    rows = []
    for line in open(p["data"]):
        row = json.loads(line)
        enc = tokenizer(row["text"], truncation=True, max_length=p["max_length"], padding="max_length", return_tensors="pt")
        rows.append({"input_ids": enc["input_ids"][0], "attention_mask": enc["attention_mask"][0], "label": int(row["label"])})
random.shuffle(rows)
n_eval = max(1, int(len(rows) * p["eval_fraction"]))
eval_rows, train_rows = rows[:n_eval], rows[n_eval:]
model.to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=p["lr"])


def batches(items, size):
    for i in range(0, len(items), size):
        chunk = items[i : i + size]
        yield (torch.stack([r["input_ids"] for r in chunk]).to(device),
               torch.stack([r["attention_mask"] for r in chunk]).to(device),
               torch.tensor([r["label"] for r in chunk], device=device))


step, start_epoch, skip = 0, 0, 0
state = spawn_task.load_checkpoint(map_location=device)
if state:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    step, start_epoch, skip = state["step"], state["epoch"], state["batch"]

for epoch in range(start_epoch, p["epochs"]):
    model.train()
    for b, (ids, mask, labels) in enumerate(batches(train_rows, p["batch_size"])):
        if epoch == start_epoch and b < skip:
            continue
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % p["checkpoint_every"] == 0:
            spawn_task.save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                        "step": step, "epoch": epoch, "batch": b + 1})
            spawn_task.metric(epoch=epoch, step=step, loss=round(loss.item(), 5))
    model.eval()
    correct = 0
    with torch.no_grad():
        for ids, mask, labels in batches(eval_rows, p["batch_size"]):
            correct += (model(input_ids=ids, attention_mask=mask).logits.argmax(-1) == labels).sum().item()
    spawn_task.save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "step": step, "epoch": epoch + 1, "batch": 0})
    spawn_task.metric(epoch=epoch + 1, step=step, loss=round(loss.item(), 5), accuracy=round(correct / len(eval_rows), 4))

model.save_pretrained(spawn_task.output_dir() / "model")
if not SMOKE:
    tokenizer.save_pretrained(spawn_task.output_dir() / "model")
