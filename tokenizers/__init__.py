"""Tokenizers (installed as ``mmgen.tokenizers``): text bytes, class labels, image VQ."""

if __name__ != "mmgen.tokenizers":  # the repository root is on sys.path: not our package
    from mmgen.kernels._top_level import use_installed_package

    use_installed_package(__name__, __file__)
