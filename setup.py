"""Install the `tokcom` import namespace from the flat top-level folders.

    tokcom            <- tokcom/     (package root and the `tokcom` command)
    tokcom.modeling   <- modeling/   (Hub-copyable model code)
    tokcom.pipelines  <- pipelines/  (transformers pipelines, resource allocator)
    tokcom.training   <- training/   (accelerate entry points, data generators, recipes)
    tokcom.spaces     <- spaces/     (the Gradio Space: app.py, requirements.txt, README.md)
"""

from setuptools import setup

PACKAGE_DIRS = {
    "tokcom": "tokcom",
    "tokcom.modeling": "modeling",
    "tokcom.pipelines": "pipelines",
    "tokcom.training": "training",
    "tokcom.training.data": "training/data",
    "tokcom.spaces": "spaces",
}

# torch is pinned to the CPU wheel that this project's machines keep on disk;
# an unpinned torch would pull a multi-GB CUDA build.
INSTALL_REQUIRES = [
    "torch==2.13.0",
    "transformers==5.23.0",
    "peft==0.21.2",
    "accelerate==1.15.0",
    "datasets==5.2.0",
    "huggingface_hub>=1.0,<3",
    "diffusers==0.42.1",
    "evaluate==0.4.6",
    "torchmetrics==1.9.0",  # caption BLEU (TaiChi), FID (UniToCom)
    "jiwer==3.1.0",  # word error rate (UniToCom ASR)
    "gradio==6.31.0",
    "scipy>=1.13,<2",
    "numpy>=1.26,<3",
    "safetensors>=0.4.3",
    "matplotlib>=3.8",
    "pillow>=10",
    "tqdm>=4.66",
    "sionna-no-rt==2.2.0",  # the digital-link baseline (PyTorch; imported lazily)
    "soundfile>=0.12",  # FLAC / Opus through libsndfile for the digital link
]

EXTRAS_REQUIRE = {
    "test": ["pytest>=8", "pytest-timeout>=2.3", "playwright==1.65.2"],
}

setup(
    name="tokcom",
    version="0.1.0.dev0",
    description="Hugging Face-native token communication models: multimodal tokens over simulated wireless channels",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=list(PACKAGE_DIRS),
    package_dir=PACKAGE_DIRS,
    package_data={
        "tokcom.training": ["recipes/*.json"],
        "tokcom": ["checkpoints/*/*", "checkpoints/*/*/*"],  # a default's files and its subfolders (UniToCom's reader)
        "tokcom.spaces": ["requirements.txt", "README.md"],
    },
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["tokcom=tokcom.cli:main"]},
)
