"""PyTorch's DataLoader with PIL on an image folder, the peer of hashguard's
`loader_throughput` example: decode, resize the shorter side, centre crop, to a tensor.

    python benches/peers/loader_throughput.py ROOT [--resize 256] [--crop 224] [--workers 2]

Prints JSON with images/s of each run (each run is one pass over every image, batch 64).
"""

import argparse
import json
import os
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class Folder(Dataset):
    def __init__(self, root, transform):
        self.paths = sorted(
            os.path.join(d, f)
            for d, _, files in os.walk(root, followlinks=True)
            for f in files
            if f.lower().endswith(EXTENSIONS)
        )
        self.transform = transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as img:
            return self.transform(img.convert("RGB"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root")
    p.add_argument("--resize", type=int, default=256)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(1)
    t = transforms.Compose([
        transforms.Resize(a.resize), transforms.CenterCrop(a.crop), transforms.ToTensor(),
    ])
    data = Folder(a.root, t)
    rates = []
    for _ in range(a.runs):
        loader = DataLoader(data, batch_size=64, num_workers=a.workers)
        start = time.perf_counter()
        n = sum(batch.shape[0] for batch in loader)
        rates.append(n / (time.perf_counter() - start))
    print(json.dumps({
        "loader": "torch DataLoader + PIL",
        "torch": torch.__version__,
        "workers": a.workers,
        "resize": a.resize,
        "crop": a.crop,
        "images": len(data),
        "images_per_second": rates,
    }))


if __name__ == "__main__":
    main()
