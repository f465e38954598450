#!/usr/bin/python3
"""Generate kaival's tiny trained vision encoders (SigLIP-shaped towers).

    /usr/bin/python3 tools/gen_vision_fixtures.py --out testdata/models

Writes three tower-only safetensors files (BF16), each a 3-block ViT over 16x16
grey images in 4x4 patches, trained to classify drawn shapes:

  vision-a/        the "foreign" encoder: seed 1, shapes data set A
  vision-a-tuned/  vision-a trained further on data set B (another shape mix,
                   inverted contrast): what a team that adopts a foreign encoder
                   and fine-tunes it ships
  vision-b/        an independent encoder: seed 2, data set A

Tensor names follow Hugging Face SigLIP inside a VLM
(vision_tower.vision_model.*), so kaival's role assignment sees a vision tower.
kaival's lineage tests and `kaival demo` attach these towers to the language
fixtures to build VLMs. Needs python3-torch; CPU only; seconds.
"""

import argparse
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures import formats  # noqa: E402

HIDDEN, BLOCKS, FFN, HEADS, PATCH, IMAGE, CLASSES = 48, 3, 96, 4, 4, 16, 4
PREFIX = "vision_tower.vision_model."


def shapes(n, gen, mix, invert):
    """n images of squares, discs, crosses and bars at random places and sizes."""
    imgs = torch.zeros(n, 1, IMAGE, IMAGE)
    labels = torch.multinomial(torch.tensor(mix), n, replacement=True, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(IMAGE), torch.arange(IMAGE), indexing="ij")
    for i in range(n):
        r = int(torch.randint(2, 5, (1,), generator=gen))
        cy, cx = (int(v) for v in torch.randint(r, IMAGE - r, (2,), generator=gen))
        k = int(labels[i])
        if k == 0:
            m = ((yy - cy).abs() <= r) & ((xx - cx).abs() <= r)
        elif k == 1:
            m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        elif k == 2:
            m = (((yy - cy).abs() <= r) & ((xx - cx).abs() <= 0)) | (((xx - cx).abs() <= r) & ((yy - cy).abs() <= 0))
        else:
            m = ((yy - cy).abs() <= 0) & ((xx - cx).abs() <= r + 2)
        imgs[i, 0][m] = 1.0
    imgs += 0.1 * torch.randn(imgs.shape, generator=gen)
    return (1.0 - imgs if invert else imgs), labels


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(HIDDEN)
        self.q_proj, self.k_proj = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
        self.v_proj, self.out_proj = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
        self.layer_norm2 = nn.LayerNorm(HIDDEN)
        self.fc1, self.fc2 = nn.Linear(HIDDEN, FFN), nn.Linear(FFN, HIDDEN)

    def forward(self, x):
        b, t, _ = x.shape
        h = self.layer_norm1(x)
        split = lambda z: z.view(b, t, HEADS, HIDDEN // HEADS).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q_proj(h)), split(self.k_proj(h)), split(self.v_proj(h))
        a = torch.softmax(q @ k.transpose(-1, -2) / (HIDDEN // HEADS) ** 0.5, dim=-1) @ v
        x = x + self.out_proj(a.transpose(1, 2).reshape(b, t, HIDDEN))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.layer_norm2(x)), approximate="tanh"))


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embedding = nn.Conv2d(1, HIDDEN, PATCH, stride=PATCH)
        self.position_embedding = nn.Embedding((IMAGE // PATCH) ** 2, HIDDEN)
        self.blocks = nn.ModuleList(Block() for _ in range(BLOCKS))
        self.post_layernorm = nn.LayerNorm(HIDDEN)
        self.classifier = nn.Linear(HIDDEN, CLASSES)  # training head, not shipped

    def forward(self, img):
        x = self.patch_embedding(img).flatten(2).transpose(1, 2) + self.position_embedding.weight
        for blk in self.blocks:
            x = blk(x)
        return self.classifier(self.post_layernorm(x).mean(1))


def train(model, steps, seed, mix, invert, lr):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    first = last = None
    for _ in range(steps):
        x, y = shapes(64, gen, mix, invert)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss) if first is None else first
        last = float(loss)
    x, y = shapes(512, torch.Generator().manual_seed(seed + 999), mix, invert)
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    return first, last, acc


def hf_state(model):
    """SigLIP names, BF16; the classifier head stays behind."""
    out = {}
    emb = PREFIX + "embeddings."
    out[emb + "patch_embedding.weight"] = model.patch_embedding.weight
    out[emb + "patch_embedding.bias"] = model.patch_embedding.bias
    out[emb + "position_embedding.weight"] = model.position_embedding.weight
    for i, blk in enumerate(model.blocks):
        p = f"{PREFIX}encoder.layers.{i}."
        for name, mod in [("self_attn.q_proj", blk.q_proj), ("self_attn.k_proj", blk.k_proj),
                          ("self_attn.v_proj", blk.v_proj), ("self_attn.out_proj", blk.out_proj),
                          ("mlp.fc1", blk.fc1), ("mlp.fc2", blk.fc2), ("layer_norm1", blk.layer_norm1),
                          ("layer_norm2", blk.layer_norm2)]:
            out[p + name + ".weight"] = mod.weight
            out[p + name + ".bias"] = mod.bias
    out[PREFIX + "post_layernorm.weight"] = model.post_layernorm.weight
    out[PREFIX + "post_layernorm.bias"] = model.post_layernorm.bias
    return {k: v.detach().to(torch.bfloat16).contiguous().clone() for k, v in out.items()}


VISION_CONFIG = {"model_type": "siglip_vision_model", "hidden_size": HIDDEN, "num_hidden_layers": BLOCKS,
                 "num_attention_heads": HEADS, "intermediate_size": FFN, "patch_size": PATCH,
                 "image_size": IMAGE, "num_channels": 1}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    mix_a, mix_b = [0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]
    runs = {}

    torch.manual_seed(1)
    a = Tower()
    runs["vision-a"] = (a, dict(seed=1, steps=400, data="A", parent=None, stats=train(a, 400, 11, mix_a, False, 3e-3)))
    tuned = Tower()
    tuned.load_state_dict(a.state_dict())
    runs["vision-a-tuned"] = (tuned, dict(seed=1, steps=150, data="B", parent="vision-a",
                                          stats=train(tuned, 150, 12, mix_b, True, 1e-3)))
    torch.manual_seed(2)
    b = Tower()
    runs["vision-b"] = (b, dict(seed=2, steps=400, data="A", parent=None, stats=train(b, 400, 13, mix_a, False, 3e-3)))

    manifest = {"generator": "tools/gen_vision_fixtures.py", "vision_config": VISION_CONFIG, "towers": {}}
    for name, (model, info) in runs.items():
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "vision.safetensors")
        formats.write_safetensors(path, hf_state(model))
        with open(os.path.join(folder, "vision_config.json"), "w") as f:
            json.dump(VISION_CONFIG, f, indent=1)
        first, last, acc = info.pop("stats")
        info.update(train_loss_first=round(first, 4), train_loss_last=round(last, 4), heldout_accuracy=round(acc, 4),
                    bytes=os.path.getsize(path))
        manifest["towers"][name] = info
        print(f"{name}: loss {first:.3f} -> {last:.3f}, held-out accuracy {acc:.3f}", file=sys.stderr)
    with open(os.path.join(args.out, "vision-manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
