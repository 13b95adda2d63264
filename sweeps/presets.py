"""Each dataset's study as data: what to vary, how to train, per-optimizer hyper-parameters.

`study` holds the grid and resources (with `gpu_memory_gib`, a trial's GPU-memory peak measured on an
H200, where one was measured), `trial` every TrialConfig field shared by all trials, and
`optimizers` the fields that depend on the optimizer. Every value can be overridden from the CLI.
"""

from __future__ import annotations

PAPER_SEEDS = (0, 42, 314, 3407, 180698)
PAPER_ADAM = {"beta1": 0.851436, "beta2": 0.999689, "amsgrad": True}  # the reference study's Adam, in all three presets
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # file data sets are read as RGB

_COMMON_TRIAL = {
    "momentum": 0.9,  # SGD only
    "beta1": 0.9,  # Adam only
    "beta2": 0.999,  # Adam only
    "amsgrad": False,  # Adam only
    "nesterov": False,  # SGD only
    "warmup_frac": 0.0,  # onecycle scheduler only
    "alternate_flip": False,
    "drop_last": False,
    "label_smoothing": 0.0,
    "tta": 0,  # test-time augmentation views (TrialConfig.tta)
    "precision": "fp32",  # as the reference study trained
    "channels_last": False,
    "plateau_patience": 1,  # epochs
    "plateau_factor": 0.5,
    "min_lr": 1e-6,
    "num_workers": 0,  # 0: the uint8 data set lives on the trial's device
    "image_size": (0, 0),  # (height, width) in pixels; (0, 0): as stored (in-memory sets)
    "loss": "ce",
    "pretrained": False,
    "weights": "",
    "drop_benign_without_callback": False,
    "augment": "none",  # albumentations pipeline for file data sets
    "eval_batch_size": 1024,  # examples; changes no result
    # why: held-out files are decoded the same way every epoch; decoding them again made an SDNET
    # epoch 1.23x the in-memory one (bench/input_pipeline.py). 4 GB holds SDNET's val + test
    # (3.1 GB), not CBIS-DDSM's full-size images, which stream every epoch
    "eval_cache_mb": 4096,
    # PyTorch's defaults, which the reference study ran with: TF32 convolutions, IEEE fp32 matmuls
    "conv_tf32": True,
    "matmul_tf32": False,
    "det_warn_only": False,
    "digest_batches": 2,  # leading batches whose pixels enter data_sha256
    "select": "last",
    "f1_average": "macro",
}

PRESETS: dict[str, dict] = {
    # scikit-learn's 1,797 real handwritten digits: the whole study on a laptop in minutes
    "digits": {
        "study": {
            "seeds": (0, 42),
            "optimizers": ("adam", "sgd"),
            "repeats": 3,
            "det_repeats": 2,
            "gpus_per_trial": 0.25,
            "cpus_per_trial": 1,
        },
        "trial": {
            **_COMMON_TRIAL,
            "dataset": "digits",
            "model": "small_cnn",
            "epochs": 15,
            "batch_size": 64,
            "scheduler": "cosine",
            "crop_padding": 1,
            "hflip": False,  # digits are not mirror-symmetric
            "mean": (0.30,),
            "std": (0.38,),  # of the 0..1-scaled pixels
            "metrics": ("accuracy", "f1"),
            "metric": "accuracy",
        },
        "optimizers": {"adam": {"lr": 1e-3, "weight_decay": 0.0}, "sgd": {"lr": 0.05, "weight_decay": 5e-4}},
    },
    # the reference study's task 1: PreActResNet-18, 300 epochs, cosine schedule
    "cifar10": {
        "study": {
            "seeds": PAPER_SEEDS,
            "optimizers": ("adam", "sgd"),
            "repeats": 20,
            "det_repeats": 1,
            "gpus_per_trial": 0.25,
            "gpu_memory_gib": 3.6,  # a trial's peak alone on an H200 (bench/RESULTS.md, 2026-11-27)
            "cpus_per_trial": 2,
        },
        "trial": {
            **_COMMON_TRIAL,
            "dataset": "cifar10",
            "model": "preactresnet18",
            "epochs": 300,
            "batch_size": 128,
            # why: 10-15% faster epochs than NCHW in both modes on an H200, and deterministic repeats
            # stay bit-identical (bench/RESULTS.md, 2026-11-30); a memory format, not a change of recipe
            "channels_last": True,
            "scheduler": "cosine",
            "crop_padding": 4,
            "hflip": True,
            "mean": (0.4914, 0.4822, 0.4465),
            "std": (0.2023, 0.1994, 0.2010),
            "metrics": ("accuracy", "f1"),
            "metric": "accuracy",
        },
        "optimizers": {
            "adam": {"lr": 0.01, **PAPER_ADAM, "weight_decay": 0.0},
            "sgd": {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4},
        },
    },
    # cifar10 for studies of many repeats: a ~10 s trial instead of hours. The
    # network and the recipe follow Jordan (2024), airbench94's paper (trainables/airbench_net.py)
    "cifar10-fast": {
        "study": {
            "seeds": PAPER_SEEDS,
            "optimizers": ("adam", "sgd"),
            "repeats": 20,
            "det_repeats": 1,
            "gpus_per_trial": 0.25,
            "gpu_memory_gib": 2.3,  # four packed on an H200 peaked at 9.2 GiB (bench/RESULTS.md, 2026-11-30)
            "cpus_per_trial": 2,
        },
        "trial": {
            **_COMMON_TRIAL,
            "dataset": "cifar10",
            "model": "airbench_net",
            "epochs": 16,
            "batch_size": 1024,
            "scheduler": "onecycle",
            "warmup_frac": 0.23,  # fraction of all steps
            "crop_padding": 2,
            "hflip": True,
            "alternate_flip": True,
            "drop_last": True,  # translate by up to 2 pixels
            "label_smoothing": 0.2,
            "tta": 2,
            "precision": "bf16",
            "channels_last": True,
            "eval_batch_size": 1024,
            # why: the test set through six TTA views after every epoch was a quarter of a packed
            # trial (bench/RESULTS.md); the score is the last epoch's, evaluated either way
            "eval_every": 4,
            "mean": (0.4914, 0.4822, 0.4465),
            "std": (0.2470, 0.2435, 0.2616),
            "metrics": ("accuracy", "f1"),
            "metric": "accuracy",
        },
        # tuned on an H200 (bench/RESULTS.md): SGD lr 0.5 to 4, weight decay 1.25e-4 to 1e-3, 12 to 16 epochs
        "optimizers": {
            "adam": {"lr": 1e-2, **PAPER_ADAM, "weight_decay": 5e-5},
            "sgd": {"lr": 3.0, "momentum": 0.85, "nesterov": True, "weight_decay": 2.5e-4},
        },
    },
    # Summers & Dinneen (ICML 2021), "Nondeterminism and Instability in Neural Network Optimization":
    # ResNet-14 on CIFAR-10 with every source of randomness varied alone (--vary every), one seed, SGD
    "cifar10-resnet14": {
        "study": {
            "seeds": (0,),
            "optimizers": ("sgd",),
            "repeats": 10,
            "det_repeats": 2,
            "vary": "every",
            # why: eight per H200 trained no more trial-epochs an hour than four (404 against 409 trials/h,
            # 4-epoch trials; bench/RESULTS.md, 2026-12-03)
            "gpus_per_trial": 0.25,
            "gpu_memory_gib": 2.1,  # four packed on an H200 peaked at 8.3 GiB
            "cpus_per_trial": 2,
        },
        "trial": {
            **_COMMON_TRIAL,
            "dataset": "cifar10",
            "model": "resnet14",
            "epochs": 500,
            "batch_size": 512,
            "scheduler": "cosine_warmup",
            "warmup_epochs": 3,  # linear to the peak lr, then a cosine to 0, per step
            "crop_padding": 4,
            "hflip": True,
            # why: they trained in IEEE fp32 on V100s, which have no TF32; TF32 convolutions round every
            # weight to 10 mantissa bits, so the bitflip arm's change to the 23rd would never reach them
            "conv_tf32": False,
            "mean": (0.4914, 0.4822, 0.4465),
            "std": (0.2470, 0.2435, 0.2616),
            "metrics": ("accuracy", "f1"),
            "metric": "accuracy",
        },
        "optimizers": {"sgd": {"lr": 0.4, "momentum": 0.9, "weight_decay": 5e-4}},
    },
    # the reference study's task 2: MobileNetV3-Large from scratch on SDNET2018 concrete cracks
    "sdnet": {
        "study": {
            "seeds": PAPER_SEEDS,
            "optimizers": ("adam", "sgd"),
            "repeats": 15,
            "det_repeats": 1,
            "gpus_per_trial": 0.25,
            # one alone on an H200 in channels_last; four packed 87.5 GiB (bench/RESULTS.md, 2026-12-01)
            "gpu_memory_gib": 22.3,
            "cpus_per_trial": 4,
        },
        "trial": {
            **_COMMON_TRIAL,
            "dataset": "sdnet",
            "model": "mobilenetv3_large_100",
            "epochs": 50,
            "batch_size": 256,
            "image_size": (256, 256),
            # why: four packed on an H200 trained 1.46-1.72x faster than in NCHW and evaluated 2x
            # faster; the GPU's own floor is 2.2x faster; deterministic repeats bit-identical alone and
            # packed (bench/RESULTS.md, 2026-12-01); a memory format, not a change of recipe
            "channels_last": True,
            "augment": "sdnet",
            "num_workers": 4,
            "eval_batch_size": 512,
            "scheduler": "plateau",
            "plateau_patience": 1,
            "plateau_factor": 0.5,
            "min_lr": 1e-6,
            "crop_padding": 0,
            "hflip": False,
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
            "metrics": ("accuracy", "f1", "auc"),
            "metric": "f1",
            "f1_average": "weighted",
            "select": "best_val_loss",
        },
        "optimizers": {
            "adam": {"lr": 1e-3, **PAPER_ADAM, "weight_decay": 0.0},
            "sgd": {"lr": 0.0075, "momentum": 0.9, "weight_decay": 5e-4},
        },
    },
    # --dataset folder:PATH, a user's own images (one sub-folder per class); the metric follows the
    # number of classes (sweeps.cli): AUC for two, accuracy for more
    "folder": {
        "study": {
            "seeds": (0, 42, 314),
            "optimizers": ("adam", "sgd"),
            "repeats": 5,
            "det_repeats": 1,
            "gpus_per_trial": 0.25,
            "cpus_per_trial": 4,
        },
        "trial": {
            **_COMMON_TRIAL,
            "dataset": "folder",
            "model": "resnet18",
            "epochs": 30,
            "batch_size": 64,
            "image_size": (224, 224),
            "augment": "flip",
            "num_workers": 4,
            "eval_batch_size": 256,
            "scheduler": "cosine",
            "crop_padding": 0,
            "hflip": False,
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
            "metrics": ("accuracy", "f1", "auc"),
            "metric": "accuracy",
            "select": "best_val_loss",
        },
        "optimizers": {"adam": {"lr": 1e-3, "weight_decay": 0.0}, "sgd": {"lr": 0.01, "weight_decay": 5e-4}},
    },
    # the reference study's task 3: ResNet-34 pretrained on ImageNet, full mammograms, BCE with pos_weight
    "cbis": {
        "study": {
            "seeds": PAPER_SEEDS,
            "optimizers": ("adam", "sgd"),
            "repeats": 10,
            "det_repeats": 1,
            # why: two on one H200 (97.4 GiB in channels_last) ran 1.28x the trials per hour of one,
            # start-ups and evaluations overlapping; training alone is at the GPU's limit already
            # (bench/RESULTS.md, 2026-12-01). Smaller GPUs get one (sweeps.launch.packed_share)
            "gpus_per_trial": 0.5,
            "gpu_memory_gib": 49,
            "cpus_per_trial": 8,  # the trial's process and its 7 decoding workers
        },
        "trial": {
            **_COMMON_TRIAL,
            "dataset": "cbis",
            "model": "resnet34",
            "pretrained": True,
            "epochs": 40,
            "batch_size": 10,
            "image_size": (2944, 1920),
            # why: 1.53x faster training epochs than NCHW alone on an H200, deterministic repeats
            # bit-identical alone and packed (bench/RESULTS.md, 2026-12-01); a memory format, not a change of recipe
            "channels_last": True,
            "augment": "cbis",
            # why: 4 workers decoding 16-bit 2944x1920 PNGs held a step to 0.65 s, twice the GPU's
            # 0.30 s; 7 reach it (bench/RESULTS.md, 2026-11-30). The workers change no result
            "num_workers": 7,
            "eval_batch_size": 10,
            "loss": "bce",
            "scheduler": "constant",
            "crop_padding": 0,
            "hflip": False,
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
            "metrics": ("accuracy", "f1", "auc"),
            "metric": "auc",
            "f1_average": "binary",
            "select": "best_val_auc",
        },
        "optimizers": {
            "adam": {"lr": 3.1623e-5, "weight_decay": 3.981e-5},
            "sgd": {"lr": 7.5e-4, "momentum": 0.9, "weight_decay": 3.981e-5},
        },
    },
}
