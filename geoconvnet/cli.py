"""geoconvnet: guess the country of a street-view screenshot.

The command line only parses arguments, calls the plain functions of each stage and prints
what they return. Stages that need torch, numpy or scikit-learn are imported only when one
of their commands runs (the imports marked ``lazy``), so ``geoconvnet --help`` answers at
once."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from dataclasses import fields
from pathlib import Path

from rich.table import Table

from . import __version__
from .data.cache import (
    DEFAULT_CHROMA,
    DEFAULT_MAX_CROP,
    DEFAULT_QUALITY,
    DEFAULT_SCALE,
    checksums,
    prepare,
    verify,
)
from .data.download import REFERENCE_REPO, download
from .data.images import scan_images
from .data.layout import image_files
from .data.preprocessing import AUGMENTATIONS, EVAL_VIEWS
from .inference import BATCH_SIZE_CPU, BATCH_SIZE_GPU
from .training.config import TrainConfig
from .utils.errors import DataError, GeoconvnetError
from .utils.progress import console

TRAIN_HELP = {
    "data": "dataset root with train/<Country>/ and test/<Country>/",
    "arch": "model: resnet18..152, efficientnet_b0..b2, vit_b_16 or timm:<name>",
    "weights": "imagenet or pretrained (the library's pretrained weights, downloaded and "
               "cached; for timm models their tag, e.g. CLIP), none (from scratch) or a "
               "weights file",
    "epochs": "maximum number of epochs", "batch_size": "images per step",
    "optimizer": "adam or adamw", "lr": "backbone learning rate",
    "head_lr_mult": "head learning rate = lr x this (reference: 10)",
    "weight_decay": "weight decay", "scheduler": "step (StepLR), cosine (with warmup) or none",
    "step_size": "StepLR: epochs between decays", "gamma": "StepLR: decay factor",
    "warmup_epochs": "cosine: linear warmup length in epochs",
    "label_smoothing": "cross-entropy label smoothing", "dropout": "dropout before the head",
    "patience": "stop after this many epochs without a lower validation loss",
    "max_steps": "stop after this many optimizer steps (0: no limit); the epoch it falls in "
                 "is validated and saved as usual (smoke tests, benchmarks)",
    "val_fraction": "share of train held out for validation (stratified)",
    "seed": "random seed (splits, init, augmentation)",
    "crop_size": "training crop side in source pixels (reference: 448)",
    "image_size": "side the crop is resized to (reference: 224; default: the model's "
                  "pretrained input size, else 224)",
    "train_view": "what a training step sees: crop (one random crop, the reference), full "
                  "(the whole screenshot, aspect kept) or grid (all grid crops, pooled)",
    "full_width": "width of the full view (aspect kept); 0: 448 for --train-view full, else "
                  "the image at the crop's scale",
    "hflip": "random horizontal flips (mirror the driving side); default: on for crop "
             "training only",
    "augment": f"augmentation: {', '.join(AUGMENTATIONS)}",
    "pool": "how the backbone pools its feature map: avg, gem (generalised mean, learned "
            "exponent), max, avgmax or attn (gated attention over positions)",
    "view_pool": "how the crops of a view (grid training and the grid eval view) are "
                 "combined: mean of logits, lse (log-sum-exp: a smooth max) or attn (gated "
                 "attention over the crops' features)",
    "progressive": "progressive resizing: the first epochs at this fraction of the training "
                   "resolution (e.g. 0.5), rising to full resolution for the last fifth of "
                   "the epochs; 0: off",
    "geo": "location head over geocells: auto (when the root gives coordinates: a collect "
           "manifest with lat/lon or coordinates.csv), on, off",
    "geo_weight": "weight of the location head's loss beside the country loss",
    "geocells": "at most this many geocells (cells never cross a border; crowded areas are "
                "split further)",
    "geocell_min": "training places a geocell needs to be split off",
    "geo_tau": "km: decay of the haversine label smoothing over geocells",
    "eval_view": f"view for validation and later evaluation: {', '.join(EVAL_VIEWS)}, or auto "
                 "(every view scored on validation after training, the best kept)",
    "layer_decay": "layer-wise learning-rate decay for timm ViTs, e.g. 0.75 (0: off)",
    "ema_decay": "keep an exponential moving average of the weights, e.g. 0.999 (0: off); "
                 "validation and checkpoints use it",
    "freeze_backbone": "train only the head on embeddings computed once per image and view "
                       "(a linear probe: seconds even on a CPU)",
    "embedding_cache": "folder of the frozen backbone's embeddings (default: "
                       "~/.cache/geoconvnet/embeddings)",
    "init_from": "start from all weights of this checkpoint or run, head included (e.g. "
                 "fine-tune after --freeze-backbone)",
    "num_workers": "data loader processes (default: chosen for the device)",
    "device": "auto, cpu, cuda, cuda:N or mps", "amp": "bf16 autocast on CUDA",
    "channels_last": "channels_last memory format on CUDA",
    "compile": "torch.compile the model for training (slow first epoch, faster later ones)",
    "max_pixels": "images with more pixels are rejected as decompression bombs",
    "name": "run name (folder under --runs-dir); default: date-time-arch",
    "runs_dir": "folder holding the runs",
}


def _add_train_options(p, skip: tuple = ()) -> None:
    """One flag per TrainConfig field (so train and tune never disagree on names)."""
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = TRAIN_HELP.get(f.name, "") + f" (default: {f.default})"
        if f.type in ("bool", "bool | None"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = {"int": int, "float": float, "int | None": int}.get(f.type, str)
            p.add_argument(flag, type=kind, default=None, help=help_text)
    p.add_argument("--config", help="YAML file of options (keys as the flags, _ or -)")


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on a dataset folder",
                       description="Train a model. Precedence: defaults < --config YAML < flags. "
                                   "Multi-GPU: torchrun --nproc-per-node N -m geoconvnet train ...")
    _add_train_options(p)
    p.add_argument("--resume", action="store_true", help="continue the run named by --name")


def _add_tune_parser(sub) -> None:
    p = sub.add_parser(
        "tune", help="hyperparameter search with Optuna (validation only, pruning, many workers)",
        description="Run or join an Optuna study until it holds --trials finished trials, then "
                    "retrain with the best parameters and evaluate once on test. Training flags "
                    "below are fixed for every trial; the search space is the reference's unless "
                    "--space says otherwise.")
    p.add_argument("--trials", type=int, default=10, help="finished trials the study should hold, "
                   "counting earlier runs and other workers (default: 10)")
    p.add_argument("--timeout", type=float, help="seconds after which this worker starts no new trial")
    p.add_argument("--study", default="geoconvnet", help="study name (default: geoconvnet)")
    p.add_argument("--studies-dir", default="studies", help="folder holding study folders")
    p.add_argument("--storage", default=os.environ.get("GEOCONVNET_STORAGE"),
                   help="database URL shared by workers, e.g. postgresql://user:pw@host/db "
                   "(default: $GEOCONVNET_STORAGE, else a SQLite file in the study folder). "
                   "Command-line flags are visible to every user of the machine in the process "
                   "list: put a URL with a password in $GEOCONVNET_STORAGE instead; write "
                   "@ / : %% # in the password as %%40 %%2F %%3A %%25 %%23")
    p.add_argument("--space", help="YAML search space (default: the reference's)")
    p.add_argument("--archs", help="also search the architecture, e.g. resnet34,resnet50")
    p.add_argument("--objective", default="val_loss", choices=["val_loss", "val_top1"])
    p.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"])
    p.add_argument("--pruner-warmup", type=int, default=1, help="epochs never pruned (default 1)")
    p.add_argument("--pruner-startup", type=int, default=5,
                   help="median pruner: trials completed before pruning starts (default 5)")
    p.add_argument("--heartbeat", type=int, default=60, help="seconds between a worker's "
                   "heartbeats; a trial silent for twice that is marked failed (default 60)")
    p.add_argument("--sampler-seed", type=int, help="TPE sampler seed (one worker: reproducible)")
    p.add_argument("--final-epochs", type=int, help="epochs of the final retraining "
                   "(default: --epochs)")
    p.add_argument("--finalize", action="store_true",
                   help="only retrain/evaluate/summarise the study's best trial now")
    p.add_argument("--no-finalize", action="store_true", help="stop after the trials")
    _add_train_options(p, skip=("name", "runs_dir"))


def _add_collect_parser(sub) -> None:
    p = sub.add_parser(
        "collect", help="collect screenshots of countries (GeoGuessr, Street View, Mapillary)",
        description="Fill ROOT/<split>/<Country>/ up to --per-country images from a source, "
                    "with one manifest record per image (ROOT/collect-manifest.jsonl). Run it "
                    "again to continue. Keys and tokens are read from the environment (or "
                    "flags) and never printed or stored.")
    p.add_argument("source", choices=["geoguessr", "streetview", "mapillary"])
    p.add_argument("--out", required=True, help="dataset root to fill")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--countries", help="comma-separated names or ISO codes, e.g. "
                                           "'Norway,South Korea,BRA'")
    which.add_argument("--all", action="store_true", help="the reference's 85 countries")
    p.add_argument("--per-country", type=int, required=True, help="images each country "
                   "should have in the split (counting what the root already holds)")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--delay", type=float, help="seconds between images (default: 2 for "
                   "geoguessr, 0 for the APIs)")
    p.add_argument("--dry-run", action="store_true", help="show what would be fetched")
    p.add_argument("--seed", type=int, default=0, help="random places, headings and guesses")
    p.add_argument("--max-misses", type=int, default=200,
                   help="tries in a row that find nothing before a country is given up")
    p.add_argument("--backoff", type=float,
                   help="first wait in seconds before a retry; it doubles each time (1)")
    api = p.add_argument_group("streetview and mapillary")
    api.add_argument("--key", help="Google Maps API key (default: $GOOGLE_MAPS_API_KEY; "
                     "prefer it: flags are visible to every user in the process list)")
    api.add_argument("--token", help="Mapillary client token (default: $MAPILLARY_TOKEN; "
                     "prefer it: flags are visible to every user in the process list)")
    api.add_argument("--api-url", help="API base URL (default: the service's own)")
    api.add_argument("--size", help="streetview image size, at most 640 a side (640x360)")
    api.add_argument("--fov", type=float, help="streetview field of view in degrees (100)")
    api.add_argument("--radius", type=int, help="streetview: metres around a random place "
                     "to look for a panorama; widened in empty areas (1000)")
    api.add_argument("--per-cell", type=int,
                     help="mapillary: images at most per 0.25-degree cell, to spread them (2)")
    game = p.add_argument_group("geoguessr")
    game.add_argument("--site-url", help="default: https://www.geoguessr.com")
    game.add_argument("--storage-state", help="Playwright storage state of a logged-in browser")
    game.add_argument("--profile", help="browser profile folder of a logged-in browser")
    game.add_argument("--browser", help="Chromium executable (default: Playwright's own)")
    game.add_argument("--headed", action="store_true", help="show the browser window")
    game.add_argument("--round-timeout", type=float,
                      help="seconds to wait for a round to load before reloading (30)")
    game.add_argument("--settle", type=float,
                      help="seconds to let the panorama sharpen before the capture (1)")


def _add_serve_parser(sub) -> None:
    sv = sub.add_parser("serve", help="a web page and JSON API: drop screenshots, see the top "
                        "guesses on a world map, heat maps and the GeoGuessr pin")
    sv.add_argument("checkpoint", help="checkpoint file, run folder or exported .onnx file "
                    "(no heat maps for .onnx)")
    sv.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to be reachable from other "
                    "machines (the app has no authentication)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--workers", type=int, default=1, help="server processes, each with its "
                    "own copy of the model and its share of the cores")
    sv.add_argument("--threads", type=int, default=1, help="model calls at once per process "
                    "(one already uses every core of a CPU)")
    sv.add_argument("--max-upload-mb", type=float, default=25.0, help="larger uploads get 413")
    sv.add_argument("--max-queue", type=int, default=16, help="screenshots that may wait for "
                    "the model per process; more get 503 with Retry-After at once (16)")
    sv.add_argument("--client-timeout", type=float, default=15.0, help="seconds a client may "
                    "take to send a request's head, or pause in its body, before the "
                    "connection is closed (15)")
    sv.add_argument("--max-connections", type=int, default=64, help="open connections per "
                    "process; requests beyond get 503 (64)")
    sv.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                    help="a web origin (https://example.org) whose pages may call the API; "
                    "repeat for several, * for any. Without it only this server's own page "
                    "and non-browser clients (curl, scripts) may")
    sv.add_argument("--top-k", type=int, default=5)
    sv.add_argument("--device", default="auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geoconvnet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"geoconvnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command",
                                                                        required=True)
    synth = data.add_parser("synth", help="write the procedurally drawn sample dataset")
    synth.add_argument("out")
    synth.add_argument("--classes", type=int, help="how many countries, spread over the "
                       "reference's list (default 10)")
    synth.add_argument("--countries", help="the countries by name instead, e.g. "
                       "Russia,Brazil,USA,Canada,Australia")
    synth.add_argument("--per-class", type=int, default=60, help="train images per class")
    synth.add_argument("--test-per-class", type=int, help="default: per-class / 4")
    synth.add_argument("--size", default="1600x900", help="WxH (default 1600x900)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--spread", action="store_true", help="clues anywhere across the width, "
                       "as in real screenshots (tells the views and training modes apart)")
    synth.add_argument("--clue-scale", type=float, default=1.0, help="size of the small clues "
                       "(poles, signs, bollards), e.g. 0.5 for half (default 1)")
    synth.add_argument("--coords", action="store_true", help="a place inside its country for "
                       "every image, shown by a tint of sky and ground and written to "
                       "OUT/collect-manifest.jsonl (for a location head)")
    scan = data.add_parser("scan", help="list unreadable images of a dataset folder")
    scan.add_argument("root")
    prep = data.add_parser("prepare", help="convert a dataset folder into a fast training cache "
                                           "(incremental)")
    prep.add_argument("root", help="dataset folder (train/<Country>/..., test/<Country>/...)")
    prep.add_argument("--out", required=True, help="cache folder")
    prep.add_argument("--scale", type=float, default=DEFAULT_SCALE,
                      help=f"downscale factor (default {DEFAULT_SCALE}: a 448 crop becomes 224 "
                           "pixels)")
    prep.add_argument("--quality", type=int,
                      help=f"JPEG quality (default: an existing cache's, else {DEFAULT_QUALITY})")
    prep.add_argument("--chroma", choices=["444", "422", "420"],
                      help="JPEG chroma subsampling (444: colour at full resolution, 40%% "
                           f"larger files; default: an existing cache's, else {DEFAULT_CHROMA})")
    prep.add_argument("--max-crop", type=int, default=DEFAULT_MAX_CROP,
                      help="largest training crop (source pixels) read from one tile; tiles "
                           "decode about 3x faster than whole images, for about twice the "
                           f"bytes (default {DEFAULT_MAX_CROP}; 0: whole images only)")
    prep.add_argument("--workers", type=int, help="processes (default: all cores)")
    prep.add_argument("--format", choices=["files", "shards"],
                      help="files: one cache file per image (default for up to ~100k images); "
                           "shards: WebDataset tar shards with a memory-mapped index, written "
                           "in parallel and resumable, readable from s3:// (default: an "
                           "existing cache's format, else files)")
    prep.add_argument("--shard-size", type=int, help="images per shard (--format shards; "
                      "default: up to 1000)")
    prep.add_argument("--nodes", type=int, default=1, help="machines writing the shards "
                      "together (shared --out); each runs with its --node-rank")
    prep.add_argument("--node-rank", type=int, default=0, help="this machine's number, 0.."
                      "NODES-1; the run that finds every shard written writes the index")
    dd = data.add_parser("dedup", help="exact and near duplicates, and train/test leakage "
                         "(by content, or by place where the manifest knows it)")
    dd.add_argument("root")
    dd.add_argument("--max-distance", type=int, help="perceptual-hash bits within which two "
                    "images are compared pixel by pixel (default 6, 0-16; see docs/dedup.md)")
    dd.add_argument("--spot-m", type=float, help="images taken this close (metres) are the "
                    "same spot (default 50; 0: off)")
    dd.add_argument("--move", help="move every copy but the best (largest, sharpest; train "
                    "when equal) here; label conflicts stay; nothing moves without it")
    dd.add_argument("--undo", metavar="DIR", help="put back what an earlier --move DIR moved")
    dd.add_argument("--cache", metavar="DIR", help="decode the training cache made by `data "
                    "prepare ROOT --out DIR` where it is up to date (several times faster)")
    dd.add_argument("--workers", type=int, help="processes (default: all cores)")
    fl = data.add_parser("filter", help="report (and move aside) bad screenshots: unreadable, "
                         "too small, black, uniform, blurred, loading screens, half-loaded, "
                         "or a learned filter")
    fl.add_argument("root", nargs="?", help="dataset root to check")
    fl.add_argument("--model", help="a valid/invalid filter checkpoint (or its run folder)")
    fl.add_argument("--threshold", type=float, help="learned filter (--model or --train-from): "
                    "reject when p(valid) is below this (default 0.75, the reference's)")
    fl.add_argument("--min-size", help="smallest usable image, WxH (default 320x180)")
    fl.add_argument("--move-rejects", metavar="DIR", help="move rejected images here "
                    "(recorded); nothing moves without it")
    fl.add_argument("--undo", metavar="DIR", help="put back what --move-rejects DIR moved")
    fl.add_argument("--train-from", metavar="LABELLED_ROOT", help="first train the learned "
                    "filter on LABELLED_ROOT/train/{valid,invalid}/ and use it")
    fl.add_argument("--weights", default="imagenet", help="--train-from: starting weights "
                    "(imagenet, none or a file)")
    fl.add_argument("--epochs", type=int, default=5, help="--train-from: epochs (default 5)")
    fl.add_argument("--runs-dir", default="runs", help="--train-from: where the run goes")
    fl.add_argument("--workers", type=int, help="checking processes (default: all cores)")
    pb = data.add_parser("publish", help="a root as a Hugging Face dataset: parquet shards "
                         "and a dataset card (counts, sources, licences, authors)")
    pb.add_argument("root")
    pb.add_argument("--repo", help="Hub dataset to upload to, USER/NAME")
    pb.add_argument("--to-folder", help="write the files here (default: a temporary folder "
                    "when uploading)")
    pb.add_argument("--token", help="Hub token (default: $HF_TOKEN or your login; prefer "
                    "those: flags are visible to every user in the process list)")
    pb.add_argument("--private", action="store_true", help="create the Hub dataset private")
    pb.add_argument("--workers", type=int, help="processes decoding every image first "
                    "(default: all cores)")
    gc = data.add_parser("geocells", help="the geocells of a root's training coordinates (or "
                         "of a run's location head): a map and a table")
    gc.add_argument("source", help="data root (cells built as train would) or run folder / "
                                   "checkpoint (its stored cells)")
    gc.add_argument("--out", default="geocells.png", help="map to write (.png, .svg, .pdf)")
    gc.add_argument("--geocells", type=int, default=512, help="at most this many cells (512)")
    gc.add_argument("--geocell-min", type=int, default=10,
                    help="places a cell needs to be split off (10)")
    gc.add_argument("--seed", type=int, default=0)
    st = data.add_parser("stats", help="images per country and split, sizes, formats, sources, "
                         "duplicates, leakage and places: a table and ROOT/stats/stats.html")
    st.add_argument("root")
    st.add_argument("--no-page", action="store_true", help="only the table")
    sp = data.add_parser("split", help="make or redo the train/test split: stratified by "
                         "country, duplicates and same-spot images kept on one side")
    sp.add_argument("root")
    sp.add_argument("--test-fraction", type=float, default=0.2,
                    help="share of each country in test, within half its largest group "
                         "(default 0.2)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--undo", action="store_true", help="move the files of the last split back")
    mf = data.add_parser("manifest", help="check a root's collect-manifest.jsonl against its "
                         "images; --rebuild records images without a record and sets bad lines "
                         "aside")
    mf.add_argument("root")
    mf.add_argument("--rebuild", action="store_true", help="write the repaired manifest (bad "
                    "lines go to collect-manifest.set-aside.jsonl; nothing is deleted)")
    ver = data.add_parser("verify", help="check every file of a cache (or every shard of a "
                          "sharded one, also s3://) against its checksum")
    ver.add_argument("cache")
    im = data.add_parser("import", help="bring a dataset into the layout: hf (a Hugging Face "
                         "dataset, the reference's by default), folders (a folder per "
                         "country) or osv5m (OSV-5M's CSVs and image archives)")
    im.add_argument("kind", choices=["hf", "folders", "osv5m"])
    im.add_argument("src", nargs="?", help="hf: dataset id or local folder (default: the "
                    "reference's); folders: the folder of country folders; osv5m: the "
                    "downloaded osv5m/osv5m folder")
    im.add_argument("--out", required=True, help="dataset root to write")
    im.add_argument("--all-countries", action="store_true",
                    help="folders, osv5m: keep every country, not only the reference's 85")
    im.add_argument("--min-per-country", type=int, default=1,
                    help="folders, osv5m: leave out countries with fewer images")
    im.add_argument("--token", help="hf: access token (default: $HF_TOKEN or your login; prefer those: "
                    "flags are visible to every user in the process list)")
    dl = data.add_parser("download", help="fetch the reference dataset (Hugging Face) into "
                                          "the folder layout; needs the [hf] extra "
                                          "(the same as `data import hf`)")
    dl.add_argument("out")
    dl.add_argument("--repo", default="deboradum/GeoGuessr-countries")

    _add_collect_parser(sub)
    _add_train_parser(sub)
    _add_tune_parser(sub)

    ex = sub.add_parser("export", help="export a model to ONNX (class names and preprocessing "
                        "in its metadata); predict and evaluate accept the .onnx file")
    ex.add_argument("checkpoint", help="checkpoint file or run folder")
    ex.add_argument("--format", default="onnx", choices=["onnx"])
    ex.add_argument("--out", required=True, help="the .onnx file to write")
    _add_serve_parser(sub)
    ev = sub.add_parser("evaluate", help="top-1/3/5, per-country report, confusion matrix")
    ev.add_argument("checkpoint", help="checkpoint file, run folder or exported .onnx file")
    ev.add_argument("--data", required=True)
    ev.add_argument("--split", default="test")
    ev.add_argument("--eval-view", choices=EVAL_VIEWS, help="default: the checkpoint's")
    ev.add_argument("--batch-size", type=int, help="images per forward pass (default "
                    f"{BATCH_SIZE_GPU} on a GPU, {BATCH_SIZE_CPU} on a CPU)")
    ev.add_argument("--num-workers", type=int)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--out", help="output folder (default: <run>/eval/<split>-<view>)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--no-pins", action="store_true", help="skip placing every image's pins "
                    "(a search per image and pin: minutes at 10,000s of images); the distance "
                    "to the likeliest geocell's centre is still reported")
    ev.add_argument("--refine", choices=["knn"], help="also the location head's pin refined by "
                    "the visually nearest training images in its likely cells")
    ev.add_argument("--refine-data", help="training root for --refine knn (default: the root "
                    "the model was trained on)")
    ev.add_argument("--embedding-cache", help="folder of cached embeddings for --refine knn "
                    "(default: ~/.cache/geoconvnet/embeddings)")

    pr = sub.add_parser("predict", help="top-k countries for images, folders or globs")
    pr.add_argument("checkpoint", help="checkpoint file, run folder or exported .onnx file")
    pr.add_argument("paths", nargs="+")
    pr.add_argument("--top-k", type=int, default=5)
    pr.add_argument("--eval-view", choices=EVAL_VIEWS, help="default: the checkpoint's")
    pr.add_argument("--batch-size", type=int, help="images per forward pass (default "
                    f"{BATCH_SIZE_GPU} on a GPU, {BATCH_SIZE_CPU} on a CPU)")
    pr.add_argument("--num-workers", type=int, help="decoding processes (default: one per core "
                                                    "when there is more than one batch)")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--json", action="store_true", help="print one JSON list")
    pr.add_argument("--explain", metavar="OUT_DIR", help="write Grad-CAM heat maps of the top "
                    "3 guesses over each image to OUT_DIR")
    pr.add_argument("--pin", action="store_true", help="also where to click on the GeoGuessr "
                    "map: the point with the highest expected score, and that score")

    rp = sub.add_parser("report", help="figures, tables and one HTML page for a run")
    rp.add_argument("run", help="run folder")
    rp.add_argument("--data", help="dataset root (default: the run's); needed to evaluate and "
                                   "for the prediction figures")
    rp.add_argument("--split", default="test")
    rp.add_argument("--eval-view", choices=EVAL_VIEWS, help="default: the run's")
    rp.add_argument("--all-figures", action="store_true",
                    help="a prediction figure for every image, in per-country folders")
    rp.add_argument("--sample", type=int, default=24, help="prediction figures otherwise")
    rp.add_argument("--archive", action="store_true", help="also write results.tar.gz")

    cp = sub.add_parser("compare", help="overlay top-1/top-3 curves of runs and the reference")
    cp.add_argument("runs", nargs="*", help="run folders")
    cp.add_argument("--reference", action="append", default=[],
                    choices=["resnet34", "resnet50", "resnet101", "resnet152"],
                    help="add the reference's published curves (repeatable)")
    cp.add_argument("--out", default="compare", help="output folder")

    cal = sub.add_parser("calibrate", help="fit a temperature on the validation split")
    cal.add_argument("checkpoint", help="checkpoint file or run folder")
    cal.add_argument("--data", help="dataset root (default: the run's)")
    cal.add_argument("--device", default="auto")
    return parser


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise GeoconvnetError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 1600x900") from None
    return w, h


def _table(title: str, columns: list[str], rows: list[list], right_from: int = 1) -> Table:
    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="right" if i >= right_from else "left", overflow="fold")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    return table


def cmd_data(args) -> int:
    if getattr(args, "workers", None) is not None and args.workers < 1:
        raise GeoconvnetError(f"--workers must be at least 1, got {args.workers}")
    return {"synth": data_synth, "prepare": data_prepare, "verify": data_verify,
            "download": data_download, "scan": data_scan,
            "dedup": data_dedup, "split": data_split,
            "filter": data_filter, "stats": data_stats, "geocells": data_geocells,
            "import": data_import, "publish": data_publish,
            "manifest": data_manifest}[args.data_command](args)


def data_synth(args) -> int:
    from .data.coords import read_coordinates  # lazy: see the module doc
    from .data.synth import pick_countries, synth  # lazy: see the module doc

    if args.countries is not None and args.classes is not None:
        raise GeoconvnetError("give --classes or --countries, not both")
    countries = None if args.countries is None else args.countries.split(",")
    classes = 10 if args.classes is None else args.classes
    root = synth(args.out, classes, args.per_class, args.test_per_class,
                 _parse_size(args.size), args.seed, spread=args.spread,
                 clue_scale=args.clue_scale, coords=args.coords, countries=countries)
    if countries is not None:
        classes = len(pick_countries(countries))
    summary = f"Sample dataset written to [bold]{root}[/] ({classes} classes)"
    if args.coords:
        summary += (f"; {len(read_coordinates(root))} images there have coordinates "
                    "(collect-manifest.jsonl)")
    console.print(summary)
    return 0


def data_prepare(args) -> int:
    if _wants_shards(args):
        return _prepare_shards(args)
    s = prepare(args.root, args.out, args.scale, args.quality, args.workers, chroma=args.chroma,
                max_crop=args.max_crop)
    ratio = s["cache_bytes"] / max(1, s["source_bytes"])
    if s["converted"] + s["unchanged"] > LARGE_FILE_CACHE:
        console.print(f"[yellow]{s['converted'] + s['unchanged']:,} images: a file cache checks "
                      "every file at each training start; `--format shards` (into a new "
                      "--out) starts in seconds at any size (docs/cache.md)[/]")
    console.print(f"Cache [bold]{args.out}[/]: {s['converted']} converted, {s['unchanged']} "
                     f"unchanged, {s['removed']} removed, {s['bad']} unreadable source file(s) "
                     f"skipped; {s['cache_bytes'] / 2**20:.1f} MiB = {ratio:.1%} of the source's "
                     f"{s['source_bytes'] / 2**20:.1f} MiB")
    return 0


LARGE_FILE_CACHE = 200_000  # images: above, a file cache's start-up check takes > ~20 s


def _wants_shards(args) -> bool:
    from .data.shards import TABLE  # lazy: numpy-only, but only `prepare` needs it

    if args.format is None:
        return (Path(args.out) / TABLE).is_file()
    if args.format == "files" and (Path(args.out) / TABLE).is_file():
        raise DataError(f"{args.out} is a sharded cache; use --format shards or another --out")
    return args.format == "shards"


def _prepare_shards(args) -> int:
    from .data.shardwrite import prepare_shards  # lazy: see _wants_shards

    s = prepare_shards(args.root, args.out, args.scale, args.quality, args.workers,
                       chroma=args.chroma, max_crop=args.max_crop, shard_size=args.shard_size,
                       nodes=args.nodes, node_rank=args.node_rank)
    if "waiting" in s:
        console.print(f"{s['shards_written']} shard(s) written here, {s['waiting']} still "
                      "to be written by other nodes")
        return 0
    state = "unchanged" if s["unchanged"] else f"generation {s['generation']}"
    console.print(f"Sharded cache [bold]{args.out}[/] ({state}): {s['images']} images "
                  f"(train {s['train']}, test {s['test']}) in {s['shards']} shard(s), "
                  f"{s['cache_bytes'] / 2**20:.1f} MiB; this run converted {s['converted']}, "
                  f"resumed {s['shards_resumed']} finished shard(s); {s['bad']} unreadable "
                  "source file(s) skipped")
    return 0


def _print_undo(outcome: tuple[int, list[str]], move_dir: str) -> int:
    restored, problems = outcome
    console.print(f"{restored} file(s) put back from {move_dir}")
    for problem in problems:
        print(f"not put back: {problem}", file=sys.stderr)
    return 1 if problems else 0


def data_dedup(args) -> int:
    from .curate import dedup, moves  # lazy: see the module doc

    if args.undo:
        return _print_undo(moves.undo(args.undo), args.undo)
    options = {k: v for k, v in (("max_distance", args.max_distance), ("spot_m", args.spot_m),
                                 ("workers", args.workers), ("cache", args.cache))
               if v is not None}
    if args.move:  # before the work: a bad folder should not surface after an hour
        moves.check_move_dir(Path(args.root).resolve(), Path(args.move).resolve())
    result = dedup.find_duplicates(args.root, **options)
    console.print(_table(f"Duplicates in {result.root} ({result.images} images)",
                         ["measure", "count"],
                         [["groups of exact copies", result.count("exact")],
                          ["groups of near copies", result.count("near")],
                          ["groups taken at the same spot", result.count("spot")],
                          ["copies beyond the best of each group (--move takes these)",
                           result.extra_copies],
                          ["groups in both train and test (leakage)", len(result.leakage)],
                          ["label conflicts (one image under two countries)",
                           len(result.conflicts)],
                          ["unreadable images (no perceptual hash)", len(result.unreadable)]]))
    for group in result.leakage[:10]:
        console.print(f"leakage ({'+'.join(sorted(group.links))}): {', '.join(group.files)}",
                      markup=False)
    for group in result.conflicts[:10]:
        console.print(f"label conflict ({' vs '.join(sorted(group.countries))}): "
                      f"{', '.join(group.files)}", markup=False)
    console.print(f"Every group: {result.root / dedup.REPORT}")
    if args.move:
        moved = dedup.move_duplicates(result, args.move)
        console.print(f"{moved} image(s) moved to {args.move}; put them back with "
                      f"`geoconvnet data dedup {args.root} --undo {args.move}`")
        if result.conflicts:
            console.print(f"{len(result.conflicts)} label conflict(s) not moved: decide which "
                          "country is right, then move or delete the wrong copy yourself")
    return 0


def data_filter(args) -> int:
    from .curate import filter as screen  # lazy: see the module doc
    from .curate import moves  # lazy: as above

    if args.undo:
        return _print_undo(moves.undo(args.undo), args.undo)
    # Flags first: a mistake should not surface after training a model.
    screen.check_threshold(args.threshold, learned=bool(args.model or args.train_from))
    min_size = screen.parse_min_size(args.min_size) if args.min_size else None
    if args.root and args.move_rejects:
        moves.check_move_dir(Path(args.root).resolve(), Path(args.move_rejects).resolve())
    model = args.model
    if args.train_from:
        model = screen.train_filter(args.train_from, args.runs_dir, weights=args.weights,
                                    epochs=args.epochs)
        console.print(f"Filter model: {model}")
    if not args.root:
        if args.train_from:
            return 0
        raise GeoconvnetError("data filter needs ROOT (or --train-from to only make a model)")
    options = {k: v for k, v in (("threshold", args.threshold), ("workers", args.workers),
                                 ("min_size", min_size)) if v is not None}
    rejected = screen.filter_root(args.root, model, **options)
    reasons = Counter(r.reason.split(" (")[0].split(":")[0] for r in rejected)
    console.print(_table(f"Rejected in {args.root}", ["reason", "images"],
                         sorted(reasons.items(), key=lambda kv: -kv[1]) or [["(none)", 0]]))
    console.print(f"Every rejected file and why: {Path(args.root) / screen.REPORT}")
    if args.move_rejects and rejected:
        moved = moves.move_files(Path(args.root), [r.file for r in rejected], args.move_rejects)
        (Path(args.root) / screen.REPORT).touch()  # it describes the data after its moves
        console.print(f"{moved} image(s) moved to {args.move_rejects}; put them back with "
                      f"`geoconvnet data filter --undo {args.move_rejects}`")
    return 0


def data_geocells(args) -> int:
    from .report.geocells import draw, geocells  # lazy: see the module doc

    view = geocells(args.source, cells=args.geocells, min_size=args.geocell_min, seed=args.seed)
    rows = [[r["country"], r["cells"], r["places"], r["min"], f"{r['median']:g}", r["max"]]
            for r in view.table()]
    console.print(_table(f"{len(view.cells)} geocells of {view.source}",
                         ["country", "cells", "places", "min / cell", "median / cell",
                          "max / cell"], rows))
    console.print(f"Map: [bold]{draw(view, args.out)}[/]")
    return 0


def data_stats(args) -> int:
    from .report.dataset import dataset_stats  # lazy: see the module doc

    s = dataset_stats(args.root, page=not args.no_page)
    rows = [[c, n["train"], n["test"], n["train"] + n["test"]]
            for c, n in sorted(s.counts.items(), key=lambda kv: -sum(kv[1].values()))]
    console.print(_table(f"{s.root}: {s.images} images, {len(s.counts)} countries",
                         ["country", "train", "test", "all"], rows))

    def known(value, how):
        if value is None:
            return f"unknown (run `geoconvnet data {how}`)"
        return f"{value} (STALE)" if s.findings[how].stale else f"{value}"

    summary = [["sizes", ", ".join(f"{k} ({v})" for k, v in s.sizes.most_common(3))],
               ["formats", ", ".join(f"{k} ({v})" for k, v in s.formats.most_common())],
               ["sources", ", ".join(f"{k} ({v})" for k, v in s.sources.most_common())
                or "no manifest"],
               ["places known", len(s.places)],
               ["duplicate groups", known(s.duplicate_groups, "dedup")],
               ["train/test leakage groups", known(s.leakage_groups, "dedup")],
               ["label conflicts (an image under two countries)",
                known(s.conflict_groups, "dedup")],
               ["rejected by the filter", known(s.rejected, "filter")]]
    console.print(_table("Summary", ["measure", "value"], summary, right_from=2))
    for how, finding in s.findings.items():
        console.print(f"data {how} report: {finding.describe(how, s.root)}", markup=False,
                      soft_wrap=True)
    if s.page:
        console.print(f"Page: [bold]{s.page}[/]")
    return 0


def data_publish(args) -> int:
    from .curate.publish import publish  # lazy: see the module doc

    if not args.repo and not args.to_folder:
        raise GeoconvnetError("data publish needs --repo USER/NAME, --to-folder DIR, or both")
    with tempfile.TemporaryDirectory(prefix="geoconvnet-publish-") as scratch:
        folder = args.to_folder or scratch
        counts = publish(args.root, folder, args.repo, args.token or None, args.private,
                         args.workers)
    where = f"https://huggingface.co/datasets/{args.repo}" if args.repo else args.to_folder
    console.print(f"Published {', '.join(f'{s} {n} images' for s, n in counts.items())} to "
                  f"[bold]{where}[/]")
    return 0


def data_import(args) -> int:
    if args.kind == "hf":
        repo = args.src or REFERENCE_REPO
        counts = download(args.out, repo, args.token or None)
        console.print(f"{repo} written to [bold]{args.out}[/]: " +
                      ", ".join(f"{split} {n} images" for split, n in counts.items()))
        return 0
    from .curate import importers  # lazy: as above

    if not args.src:
        raise GeoconvnetError(f"data import {args.kind} needs SRC, the folder to import from")
    run = importers.import_folders if args.kind == "folders" else importers.import_osv5m
    if args.min_per_country < 1:
        raise GeoconvnetError(f"--min-per-country must be at least 1, got "
                              f"{args.min_per_country}")
    r = run(args.src, args.out, args.all_countries, args.min_per_country)
    rows = [[c, r.imported[c], r.already[c]] for c in sorted(set(r.imported) | set(r.already))]
    console.print(_table(f"Imported into {args.out}", ["country", "new", "already there"], rows))
    fix = "" if args.kind == "osv5m" else ": rename the folder"  # a CSV's codes are as they are
    left_out = [[name or "(empty)", f"could be {' or '.join(r.ambiguous[name])}{fix}"
                 if name in r.ambiguous else f"not a country name or code{fix}", n]
                for name, n in sorted(r.unmapped.items())]
    left_out += [[name, "not a reference country (--all-countries keeps it)", n]
                 for name, n in sorted(r.outside.items())]
    left_out += [[name, f"fewer than {args.min_per_country} images", n]
                 for name, n in sorted(r.too_few.items())]
    if left_out:
        unit = "rows" if args.kind == "osv5m" else "images"
        console.print(_table("Left out", ["folder or country", "why", unit], left_out,
                             right_from=2))
    if r.missing:
        console.print(f"{sum(r.missing.values())} of the {r.rows} rows to import have no "
                      "image file ("
                      + ", ".join(f"{split} {n}" for split, n in r.missing.items())
                      + f"), e.g. ids {', '.join(r.missing_ids)}", soft_wrap=True)
    if r.unreadable:
        console.print(f"{len(r.unreadable)} image(s) unreadable in their zip archive (e.g. ids "
                      f"{', '.join(r.unreadable[:5])}): download the archives again",
                      soft_wrap=True)
    if r.copied:
        console.print(f"{r.copied} file(s) copied (hard links were not possible)")
    return 0


def data_split(args) -> int:
    from .curate import split  # lazy: see the module doc

    if args.undo:
        console.print(f"{split.undo_split(args.root)} file(s) moved back")
        return 0
    result = split.split(args.root, args.test_fraction, args.seed)
    rows = [[country, f"{c['train'][0]} -> {c['train'][1]}", f"{c['test'][0]} -> {c['test'][1]}",
             f"{c['test'][1] / max(1, c['train'][1] + c['test'][1]):.0%}"]
            for country, c in result.counts.items()]
    console.print(_table(f"New split of {args.root}", ["country", "train", "test", "test share"],
                         rows))
    console.print(f"{result.moved} file(s) moved ({result.groups} groups of copies or same-spot "
                  f"images kept on one side); undo with `geoconvnet data split {args.root} "
                  "--undo`")
    return 0


def data_manifest(args) -> int:
    from .data.manifest import NAME, SET_ASIDE, rebuild_manifest  # lazy: see the module doc

    r = rebuild_manifest(args.root, dry_run=not args.rebuild)
    done = args.rebuild
    rows = [["good records", r.records],
            ["records whose image is not in the root (moved aside or gone)", r.missing],
            [f"bad lines ({'set aside in ' + SET_ASIDE if done else 'to set aside'})",
             r.set_aside],
            [f"images without a record ({'recorded' if done else 'to record'}, no position)",
             r.added]]
    console.print(_table(f"{Path(args.root) / NAME}", ["", "count"], rows))
    if not done and (r.set_aside or r.added):
        console.print(f"Write the repaired manifest with `geoconvnet data manifest {args.root} "
                      "--rebuild`")
        return 1  # something to repair: a script can tell
    return 0


def data_verify(args) -> int:
    from .data import shards  # lazy: see _wants_shards

    if shards.is_sharded(args.cache):
        checked, bad = shards.verify(args.cache)
        for reason in sorted(bad.values()):
            print(reason, file=sys.stderr)
        console.print(f"{checked} shard and index files checked, {len(bad)} bad")
        return 1 if bad else 0
    sums = checksums(args.cache)
    bad = verify(args.cache, sums)
    for reason in sorted(bad.values()):
        print(reason, file=sys.stderr)
    console.print(f"{len(sums)} cache files checked, {len(bad)} bad")
    return 1 if bad else 0


def data_download(args) -> int:
    counts = download(args.out, args.repo)
    console.print(f"{args.repo} written to [bold]{args.out}[/]: " +
                     ", ".join(f"{split} {n} images" for split, n in counts.items()))
    return 0


def data_scan(args) -> int:
    if not Path(args.root).is_dir():
        raise GeoconvnetError(f"{args.root}: folder not found")
    files = image_files(args.root)
    bad = scan_images(files)
    for path, reason in sorted(bad.items()):
        console.print(f"{path}: {reason}", markup=False)
    console.print(f"{len(files)} images scanned, {len(bad)} unreadable")
    return 1 if bad else 0


def _source_options(args) -> dict:
    """The options given for the chosen source (the source's own defaults for the rest);
    secrets from the environment unless given as flags."""
    if args.source == "streetview":
        options = {"key": args.key or os.environ.get("GOOGLE_MAPS_API_KEY", ""),
                   "size": _parse_size(args.size) if args.size else None, "fov": args.fov,
                   "radius_m": args.radius, "api_url": args.api_url}
    elif args.source == "mapillary":
        options = {"token": args.token or os.environ.get("MAPILLARY_TOKEN", ""),
                   "per_cell": args.per_cell, "api_url": args.api_url}
    else:
        options = {"browser": args.browser, "storage_state": args.storage_state,
                   "profile": args.profile, "headed": args.headed, "site_url": args.site_url,
                   "round_timeout": args.round_timeout, "settle": args.settle}
    options.update(seed=args.seed, backoff=args.backoff)
    return {k: v for k, v in options.items() if v is not None}


def cmd_collect(args) -> int:
    from .collect.sources import collect_from  # lazy: see the module doc

    countries = None if args.all else args.countries.split(",")  # "" is refused, never "all"
    result = collect_from(args.source, args.out, countries, args.per_country, split=args.split,
                          delay=args.delay, dry_run=args.dry_run, max_misses=args.max_misses,
                          **_source_options(args))
    n = result.per_country
    title = (f"{'Plan' if result.dry_run else 'Collected'}: {result.source} -> "
             f"{result.root}/{result.split}, {n} per country")
    if result.dry_run:
        rows = [[c.country, c.had, c.to_fetch(n), c.had + c.to_fetch(n)]
                for c in result.countries]
        console.print(_table(title, ["country", "had", "to fetch", "after"], rows))
        return 0
    rows = [[c.country, c.had, c.collected, c.had + c.collected, sum(c.skipped.values()),
             "gave up" if c.gave_up else ""] for c in result.countries]
    console.print(_table(title, ["country", "had", "new", "now", "skipped", ""], rows))
    for c in result.countries:
        for reason, k in c.skipped.most_common():
            console.print(f"{c.country}: skipped {k}: {reason}", markup=False, soft_wrap=True)
        if c.gave_up:
            console.print(f"{c.country}: gave up: {c.gave_up}", markup=False, soft_wrap=True)
    console.print(f"{result.collected} images in {result.seconds:.1f} s "
                  f"({result.images_per_minute:.1f} images/min)")
    return 1 if any(c.gave_up for c in result.countries) else 0


def cmd_train(args) -> int:
    from .training.distributed import is_main  # lazy: see the module doc
    from .training.train import train  # lazy: as above

    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    run = train(config_file=args.config, resume=args.resume, **overrides)
    if not is_main():  # under torchrun, rank 0 writes the summary and speaks for the run
        return 0
    summary = json.loads((run / "summary.json").read_text())
    console.print(f"Best epoch {summary['best_epoch']} (val loss "
                     f"{summary['best_val_loss']:.4f}); checkpoint: {run / 'best.safetensors'}")
    return 0


def cmd_tune(args) -> int:
    from .training.tune import (  # lazy: see the module doc
        dashboard_hint,
        finalize,
        tune,
    )

    if args.finalize:
        _, summary = finalize(args.study, args.studies_dir, args.storage, args.final_epochs)
    else:
        if not args.data:
            raise GeoconvnetError("tune needs --data ROOT_OR_CACHE")
        fixed = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                 if f.name not in ("name", "runs_dir", "data")}
        summary = tune(
            args.data, args.trials, study=args.study, studies_dir=args.studies_dir,
            storage=args.storage, space=args.space,
            archs=args.archs.split(",") if args.archs else None, config_file=args.config,
            objective=args.objective, pruner=args.pruner, pruner_warmup=args.pruner_warmup,
            pruner_startup=args.pruner_startup, timeout=args.timeout, heartbeat=args.heartbeat,
            sampler_seed=args.sampler_seed, finalize=not args.no_finalize,
            final_epochs=args.final_epochs, **fixed).summary
    study_dir = Path(args.studies_dir) / args.study
    if summary:
        _print_study_summary(summary, study_dir)
    console.print(dashboard_hint(study_dir, args.storage))
    return 0


def _print_study_summary(summary: dict, study_dir: Path) -> None:
    title = f"Best trial {summary['best_trial']}: {summary['objective']} {summary['best_value']:.4f}"
    console.print(_table(title, ["parameter", "value"],
                         [[k, f"{v:.3g}" if isinstance(v, float) else v]
                          for k, v in summary["best_params"].items()]))
    if summary["test"]:
        t = summary["test"]
        console.print(f"Final model on test: top-1 {t['top1']:.1%}, top-3 {t['top3']:.1%} "
                      f"({summary['final_run']})")
    console.print(f"Summary: {study_dir / 'summary' / 'summary.md'}")


def cmd_evaluate(args) -> int:
    from .inference.evaluate import evaluate  # lazy: see the module doc

    result = evaluate(args.checkpoint, args.data, split=args.split, eval_view=args.eval_view,
                      batch_size=args.batch_size, device=args.device, num_workers=args.num_workers,
                      out_dir=args.out, pins=not args.no_pins, refine=args.refine,
                      refine_data=args.refine_data,
                      embedding_cache=args.embedding_cache)
    m = result.metrics
    _print_skipped(result.skipped)
    if args.json:
        print(json.dumps({**m, "out_dir": str(result.out_dir)}))
        return 0
    console.print(_table(f"{args.split} split, {m['eval_view']} view, {m['n']} images "
                         f"({result.images_per_s:.1f} images/s)",
                         ["top-1", "top-3", "top-5", "loss"],
                         [[f"{m['top1']:.1%}", f"{m['top3']:.1%}", f"{m['top5']:.1%}",
                           f"{m['loss']:.4f}"]], right_from=0))
    if m.get("geo"):
        console.print(_geo_table(m["geo"]))
    elif m.get("geo_cell", {}).get("n"):
        console.print(f"Likeliest geocell's centre: median {m['geo_cell']['median_km']:,.0f} km "
                      f"from the true place ({m['geo_cell']['n']} images)")
    console.print(f"Per-country report, confusion matrix and predictions: [bold]{result.out_dir}[/]")
    return 0


GEO_LABELS = {"pin": "location head pin", "pin_knn": "location head pin, knn refined",
              "country_pin": "country pin"}


def _geo_table(geo: dict):
    """How far the pins land: a row per pin."""
    rows = [[GEO_LABELS.get(kind, kind), f"{g['median_km']:,.0f}", f"{g['mean_km']:,.0f}",
             f"{g['geoscore']:,.0f}"] + [f"{g['within'][t]:.1%}" for t in ("25", "200", "750",
                                                                             "2500")]
            for kind, g in geo.items() if g["n"]]
    return _table(f"Distance to the true place ({next(iter(geo.values()))['n']} images)",
                  ["pin", "median km", "mean km", "GeoScore", "≤25 km", "≤200 km", "≤750 km",
                   "≤2500 km"], rows, right_from=1)


def _print_skipped(skipped: dict[str, str]) -> None:
    for reason in skipped.values():
        print(f"skipped: {reason}", file=sys.stderr)


def cmd_predict(args) -> int:
    from .inference.predict import predict  # lazy: see the module doc

    results = predict(args.checkpoint, args.paths, args.top_k, args.eval_view, args.device,
                      args.batch_size, args.num_workers, pin=args.pin,
                      explain_dir=args.explain)
    ok = [r for r in results if r.error is None]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
    else:
        k = max((len(r.top) for r in ok), default=0)
        pins = ["pin (expected score)"] if args.pin else []
        console.print(_table("Predicted countries",
                             ["image"] + [f"#{i + 1}" for i in range(k)] + pins,
                             [[r.path, *(f"{c} {p:.1%}" for c, p in r.top), *_pin_cell(r)]
                              for r in ok]))
    for r in results:
        if r.error is not None:
            print(f"error: {r.error}", file=sys.stderr)
    print(f"{len(ok)} of {len(results)} images in {results.seconds:.2f} s "
          f"({results.images_per_s:.1f} images/s)", file=sys.stderr)
    return 1 if len(ok) < len(results) else 0


def _pin_cell(result) -> list[str]:
    if result.pin is None:
        return []
    pin, naive = result.pin.suggested, result.pin.naive
    return [f"{pin.lat:.3f}, {pin.lon:.3f} ({pin.expected_score:,.0f}; centre of #1: "
            f"{naive.expected_score:,.0f})"]


def cmd_export(args) -> int:
    from .models.onnx import export_onnx  # lazy: see the module doc

    out = export_onnx(args.checkpoint, args.out)
    console.print(f"ONNX model: [bold]{out}[/] ({out.stat().st_size / 2**20:.1f} MiB); run it "
                  f"with `geoconvnet predict {out} IMAGES`")
    return 0


def cmd_serve(args) -> int:
    from .app.serve import serve  # lazy: see the module doc

    serve(args.checkpoint, args.host, args.port, args.workers, args.threads, args.max_upload_mb,
          args.device, args.top_k, max_queue=args.max_queue, client_timeout=args.client_timeout,
          max_connections=args.max_connections, allow_origins=args.allow_origin)
    return 0


def cmd_report(args) -> int:
    from .report.page import report  # lazy: see the module doc

    out = report(args.run, args.data, args.split, args.eval_view, args.all_figures, args.sample,
                 args.archive)
    console.print(f"Report: [bold]{out / 'report.html'}[/]")
    return 0


def cmd_compare(args) -> int:
    from .report.page import compare  # lazy: see the module doc

    written = compare(args.runs, args.reference, args.out)
    console.print(f"Comparison plots: {', '.join(str(p) for p in written)}")
    return 0


def cmd_calibrate(args) -> int:
    from .training.calibrate import calibrate  # lazy: see the module doc

    c = calibrate(args.checkpoint, args.data, args.device)
    _print_skipped(c.skipped)
    console.print(f"Temperature {c.temperature:.3f} (validation NLL {c.nll_before:.4f} -> "
                     f"{c.nll_after:.4f}, {c.n} images) stored in {c.checkpoint}")
    return 0


COMMANDS = {"data": cmd_data, "collect": cmd_collect, "train": cmd_train, "tune": cmd_tune,
            "evaluate": cmd_evaluate, "predict": cmd_predict, "export": cmd_export,
            "serve": cmd_serve,
            "report": cmd_report, "compare": cmd_compare, "calibrate": cmd_calibrate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except GeoconvnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
