"""The task registry: each task's name, metric, config section, presets, data layouts, data module
and LightningModule.

A dict, not an if-chain. Config types, presets, CLI choices and help, training, sweeps, queries
and the report all read it. Importing it is cheap (no Lightning), so the CLI can validate with it.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from attnlab.pipeline.config.errors import ConfigError

if TYPE_CHECKING:
    import lightning as L

    from attnlab.pipeline.config.train import TrainConfig


@dataclass(frozen=True)
class Layout:
    """A published on-disk layout a task reads: how to recognise it, what it expects, its data module."""

    name: str
    detect: Callable[[Path], bool]
    expects: str
    make_data: Callable[[TrainConfig, Path], L.LightningDataModule]
    check: Callable[
        [Path], None
    ]  # the whole folder, before anything heavy loads (pipeline/data/preflight.py)


@dataclass(frozen=True)
class Task:
    """One task. `section` is the TrainConfig section with its model settings; `tiny` and `paper`
    are its presets (small model and schedule for generated data; the study's recipe)."""

    name: str
    summary: str
    metric: str
    make_tiny: Callable[[Path], Path]
    layouts: tuple[Layout, ...]
    make_module: Callable[[TrainConfig, L.LightningDataModule], L.LightningModule]
    module: str  # "package.module:Class" of its LightningModule, which a checkpoint is restored into
    tiny: dict[str, Any] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    # What generic code (configs, report, findings) needs to know of a task, so it never asks
    # which task it runs: its attention sites (one spec per site; () = one spec for the network),
    # the spec a run gets when none is given, and what it models (images or sequences).
    attention_sites: tuple[str, ...] = ()
    default_attention: str = "w/o"
    modality: str = "images"
    # The sites the study's self-attention claims (findings 1 and 3) are about, which a grid sets
    # to one spec together: the term effects read them as one joint site as well ("self").
    self_attention_sites: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        return self.name

    def make_data(self, cfg: TrainConfig, root: Path) -> L.LightningDataModule:
        return detect_layout(cfg.task, root).make_data(cfg, root)

    def module_class(self) -> type[L.LightningModule]:

        module, name = self.module.split(":")
        return getattr(importlib.import_module(module), name)


def _detection_tiny(out: Path) -> Path:
    from attnlab.pipeline.data.tiny import make_tiny_detection

    return make_tiny_detection(out)


def _coco_data(cfg: TrainConfig, root: Path):
    from attnlab.pipeline.data.coco import CocoDataModule

    return CocoDataModule(root, cfg.data.batch_size, cfg.data.num_workers, cfg.data.eval_batch_size, cfg.seed)


def _detection_module(cfg: TrainConfig, dm):
    from attnlab.lightning_modules.detection import DetectionModule

    dm.setup()
    return DetectionModule(cfg, dm.num_classes, dm.label_to_cat, batch_size=cfg.data.batch_size)


def _segmentation_tiny(out: Path) -> Path:
    from attnlab.pipeline.data.tiny import make_tiny_segmentation

    return make_tiny_segmentation(out)


def _segmentation_data(module: str, cls: str):
    def make(cfg: TrainConfig, root: Path):

        data_module = getattr(importlib.import_module(f"attnlab.pipeline.data.{module}"), cls)
        s = cfg.segmentation
        return data_module(
            root,
            cfg.data.batch_size,
            cfg.data.num_workers,
            s.crop_size,
            s.scale_range,
            cfg.data.eval_batch_size,
            cfg.seed,
            s.resize,
        )

    return make


def _segmentation_module(cfg: TrainConfig, dm):
    from attnlab.lightning_modules.segmentation import SegmentationModule

    return SegmentationModule(cfg, dm.class_names, batch_size=cfg.data.batch_size)


def _translation_tiny(out: Path) -> Path:
    from attnlab.pipeline.data.tiny import make_tiny_translation

    return make_tiny_translation(out)


def _translation_data(cfg: TrainConfig, root: Path):
    from attnlab.pipeline.data.translation import TranslationDataModule

    t = cfg.translation
    vocab_dir = Path(cfg.out_dir) / "vocab" / f"{Path(root).resolve().name}-{t.vocab_size}"
    return TranslationDataModule(
        root, vocab_dir, t.src_lang, t.tgt_lang, t.vocab_size, t.max_tokens, t.max_len, cfg.seed
    )


def _translation_module(cfg: TrainConfig, dm):
    from attnlab.lightning_modules.translation import TranslationModule

    return TranslationModule(cfg, dm.vocab)


def _preflight(name: str) -> Callable[[Path], None]:
    def check(root: Path) -> None:
        from attnlab.pipeline.data import preflight

        getattr(preflight, name)(root)

    return check


def _has(*names: str) -> Callable[[Path], bool]:
    return lambda root: all((root / n).exists() for n in names)


def _parallel_text(root: Path) -> bool:
    from attnlab.pipeline.data.layouts import looks_like_parallel_text

    return looks_like_parallel_text(root)


def _datasets_folder(root: Path) -> bool:
    from attnlab.pipeline.data.layouts import looks_like_datasets

    return looks_like_datasets(root)


_TINY_BACKBONE = {"depth": 18, "attention_options": {"num_heads": 4, "kv_stride": 2}}

_TASK_LIST = [
    Task(
        "detection",
        "COCO object detection (Faster R-CNN + FPN)",
        "val/bbox_AP",
        _detection_tiny,
        (
            Layout(
                "COCO",
                _has("annotations"),
                "annotations/instances_{train,val}2017.json with {train,val}2017/ image folders",
                _coco_data,
                _preflight("check_coco"),
            ),
        ),
        _detection_module,
        "attnlab.lightning_modules.detection:DetectionModule",
        tiny={
            "max_epochs": 12,
            "backbone": _TINY_BACKBONE,
            "detection": {
                "fpn_channels": 64,
                "min_size": 128,
                "max_size": 128,
                "detections_per_image": 20,
                "anchor_sizes": [16, 32, 64, 128, 256],
            },
            "optim": {"base_lr": 0.02, "base_batch": 4, "warmup_iters": 20, "lr_steps": [9, 11]},
            "data": {"batch_size": 4},
        },
        paper={"max_epochs": 12, "data": {"batch_size": 2, "num_workers": 4}},
    ),
    Task(
        "segmentation",
        "Cityscapes or CamVid semantic segmentation (DeepLabV3 head)",
        "val/mIoU",
        _segmentation_tiny,
        (
            Layout(
                "Cityscapes",
                _has("leftImg8bit", "gtFine"),
                "leftImg8bit/{train,val}/<city>/*_leftImg8bit.png "
                "with gtFine/{train,val}/<city>/*_gtFine_labelIds.png",
                _segmentation_data("cityscapes", "CityscapesDataModule"),
                _preflight("check_cityscapes"),
            ),
            Layout(
                "CamVid",
                _has("train", "trainannot", "val", "valannot"),
                "train/, trainannot/, val/, valannot/ "
                "(SegNet's CamVid; images .png or .jpg, label maps .png, paired by file stem)",
                _segmentation_data("camvid", "CamVidDataModule"),
                _preflight("check_camvid"),
            ),
        ),
        _segmentation_module,
        "attnlab.lightning_modules.segmentation:SegmentationModule",
        tiny={
            "max_epochs": 12,
            "backbone": _TINY_BACKBONE,
            # 128 px: a real data set's images (CamVid's 360x480) scaled like the generated ones.
            "segmentation": {"output_stride": 8, "crop_size": 96, "scale_range": [0.75, 1.25], "resize": 128},
            "optim": {
                "base_lr": 0.01,
                "base_batch": 4,
                "warmup_iters": 10,
                "lr_steps": [9, 11],
                "weight_decay": 1e-4,
            },
            "data": {"batch_size": 4},
        },
        paper={
            "max_epochs": 60,
            "optim": {"base_lr": 0.01, "base_batch": 8, "warmup_iters": 200, "lr_steps": [40, 55]},
            "segmentation": {"crop_size": 769},
            "data": {"batch_size": 2, "num_workers": 4},
        },
    ),
    Task(
        "translation",
        "WMT14 En-De or Multi30k translation (Transformer, per-site specs)",
        "val/bleu",
        _translation_tiny,
        (
            Layout(
                "datasets",
                _datasets_folder,
                "a DatasetDict.save_to_disk folder (dataset_dict.json) with "
                "train/validation splits of {'translation': {src: ..., tgt: ...}}",
                _translation_data,
                _preflight("check_translation"),
            ),
            Layout(
                "parallel text",
                _parallel_text,
                "train.en/train.de and valid.en/valid.de (or val.*), one "
                "sentence a line, plain or .gz (Multi30k's raw release)",
                _translation_data,
                _preflight("check_translation"),
            ),
        ),
        _translation_module,
        "attnlab.lightning_modules.translation:TranslationModule",
        attention_sites=("enc_self", "dec_self", "enc_dec"),
        default_attention="1000",
        modality="sequences",
        self_attention_sites=("enc_self", "dec_self"),
        tiny={
            "max_epochs": 12,
            "optim": {"lr_steps": []},
            "translation": {
                "encoder_layers": 2,
                "decoder_layers": 2,
                "d_model": 64,
                "heads": 4,
                "ffn": 128,
                "dropout": 0.1,
                "lr": 3e-3,
                "warmup_steps": 60,
                "max_tokens": 1024,
                "max_len": 64,
                "vocab_size": 200,
                "beam": 4,
            },
        },
        paper={"max_epochs": 30, "optim": {"lr_steps": []}, "precision": "16-mixed"},
    ),
]
TASKS: dict[str, Task] = {t.name: t for t in _TASK_LIST}
TASK_NAMES = tuple(TASKS)


def task_help() -> str:
    """The CLI's --task help, from the registry."""
    return "; ".join(f"{t.name}: {t.summary}" for t in TASKS.values())


def detect_layout(task: str, root: str | Path) -> Layout:
    """The first of the task's layouts `root` matches; one error naming every layout tried if none does."""

    root = Path(root)
    layouts = TASKS[task].layouts
    if not root.is_dir():
        raise ConfigError(
            f"{task} data folder {root} does not exist; pass the data set's folder, or --data tiny"
        )
    for layout in layouts:
        if layout.detect(root):
            return layout
    tried = "; ".join(f"{layout.name}: {layout.expects}" for layout in layouts)
    raise ConfigError(f"{root} matches no {task} layout. Tried {tried}")


def check_data_folder(task: str, root: str | Path) -> Layout:
    """The layout `root` has for `task`, its files checked whole (pipeline/data/preflight.py)."""
    layout = detect_layout(task, root)
    layout.check(Path(root))
    return layout


def make_tiny(task: str, out: str | Path) -> Path:
    """Generate the tiny set for `task` at `out`, atomically: a half-written folder never appears."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; pick a new folder (nothing was written)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        TASKS[task].make_tiny(tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def data_root(cfg: TrainConfig) -> Path:
    """The data folder: `tiny` is generated once under out_dir/data/, anything else is a path."""
    if cfg.data.path != "tiny":
        return Path(cfg.data.path)
    root = Path(cfg.out_dir) / "data" / f"tiny-{cfg.task}"
    if not root.exists():
        try:
            make_tiny(cfg.task, root)
        except OSError:
            if not root.exists():  # another process won the race; theirs is complete (atomic rename)
                raise
    return root
