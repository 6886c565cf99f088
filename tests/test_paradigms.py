"""The concept grid, the three mask constructors and the prompt tables."""
import pytest
import torch

from minclip_unlearn import paradigms, prompts


def test_grids_have_the_published_shapes():
    assert paradigms.grid_for("pacs").shape == (7, 4)
    dn = paradigms.grid_for("domainnet")
    assert dn.shape == (345, 6) and dn.classes[0] == "aircraft_carrier" and dn.classes[-1] == "zigzag"
    assert paradigms.grid_for("toyworld").shape == (7, 4)


def test_the_three_paradigms_fill_the_mask_as_named():
    g = paradigms.grid_for("pacs")
    glob = paradigms.forget_classes(g, ["dog", "horse"])
    assert glob.sum() == 8 and glob[0].all() and glob[4].all()
    spec = paradigms.forget_classes_in_domains(g, "dog", ["sketch", "cartoon"])
    assert spec.sum() == 2 and spec[0, 3] and spec[0, 2]
    comp = paradigms.forget_domains(g, "sketch")
    assert comp.sum() == 7 and comp[:, 3].all()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda g: paradigms.forget_classes(g, "cat"), r"unknown pacs class\(s\) \['cat'\]; valid: dog, elephant"),
        (lambda g: paradigms.forget_classes_in_domains(g, "dog", "clipart"), "valid: photo, art_painting, cartoon, sketch"),
        (lambda g: paradigms.forget_domains(g, []), "no pacs domain given"),
        (lambda g: paradigms.forget_domains(g, list(g.domains)), "every cell"),
        (lambda g: paradigms.forget_classes(g, list(g.classes)), "every cell"),
        (lambda g: paradigms.validate_mask(g, torch.zeros(7, 4, dtype=torch.bool)), "empty"),
        (lambda g: paradigms.grid_for("office31"), "valid: pacs, domainnet, toyworld"),
    ],
)
def test_bad_names_and_masks_raise_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(paradigms.grid_for("pacs"))


def test_prompts_name_the_domain_in_words():
    dn = paradigms.grid_for("domainnet")
    cell = prompts.domain_prompts("aircraft_carrier", "quickdraw", dn.domain_words)
    assert "a quick doodle of a aircraft carrier." in cell
    sketch = prompts.domain_prompts("dog", "sketch", paradigms.grid_for("pacs").domain_words)
    assert "a black and white sketch of a dog." in sketch
    assert all("sketch" not in p for p in prompts.class_prompts("dog", "pacs"))
    assert set(paradigms.grid_for("pacs").domain_words) == set(paradigms.PACS_DOMAINS)
