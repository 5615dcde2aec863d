from dataclasses import dataclass, field

import pytest

from mmgen.utils.config import ConfigError, from_dict, load_yaml, to_dict


@dataclass(kw_only=True)
class Inner:
    size: int = 1
    widths: tuple[int, ...] = (1, 2)


@dataclass(kw_only=True)
class Outer:
    name: str
    rate: float = 0.5
    inner: Inner = field(default_factory=Inner)


def test_nested_dict_to_dataclass_with_coercion():
    config = from_dict(Outer, {"name": "x", "rate": 1, "inner": {"widths": [3, 4]}})
    assert config.inner.widths == (3, 4) and isinstance(config.rate, float)
    assert to_dict(config) == {"name": "x", "rate": 1.0, "inner": {"size": 1, "widths": [3, 4]}}


def test_unknown_keys_are_named_with_their_section():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['sise'\] in section 'inner'"):
        from_dict(Outer, {"name": "x", "inner": {"sise": 2}})


def test_missing_required_field():
    with pytest.raises(ConfigError, match="name"):
        from_dict(Outer, {})


def test_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_yaml(bad)
