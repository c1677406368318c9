"""Which projects the scoring app serves, read from Label Studio's stored config maps: pure, no Django.

A project is scored when its predictions are regions that carry a ``score``, which every measure in
``measures.py`` reads whatever the region's type:

- an ``Image`` object tag: boxes, polygons, keypoints... one region per detection;
- a ``VideoRectangle`` control labeling a ``Video`` object tag: one ``videorectangle`` region per track
  (its ``score`` is the track's mean detection score, as the model server writes it).

Text, audio, time series, and videos without a ``VideoRectangle`` (timeline labels, video classes) are
not: their predictions have no scored regions from our detector, and a column that never fills means
nothing.
"""

SCORED_OBJECT_TAGS = frozenset({'image'})
"""Object tags (lower case) whose predictions the detector scores, whatever the control."""

SCORED_CONTROLS = {'videorectangle': frozenset({'video'})}
"""Control tags (lower case) -> the object tags they must label for their regions to be scored."""


def _lower(name):
    return str(name).lower()


def scored_by_object(data_types):
    """An object tag we score in Label Studio's ``data_types`` map (data key -> object tag name)."""
    return any(_lower(tag) in SCORED_OBJECT_TAGS for tag in (data_types or {}).values())


def scored_by_control(parsed_config):
    """A control we score on the object tag it needs, in Label Studio's parsed config
    (control name -> {'type', 'to_name', 'inputs': [{'type', 'value'}, ...]})."""
    if not isinstance(parsed_config, dict):
        return False
    for control in parsed_config.values():
        if not isinstance(control, dict):
            continue
        objects = SCORED_CONTROLS.get(_lower(control.get('type')))
        inputs = control.get('inputs') or []
        if objects and any(isinstance(i, dict) and _lower(i.get('type')) in objects for i in inputs):
            return True
    return False


def scores_config(data_types, parsed_config):
    """Whether a project with these config maps gets the "Uncertainty" columns (see the module docstring)."""
    return scored_by_object(data_types) or scored_by_control(parsed_config)
