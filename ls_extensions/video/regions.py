"""The labels of a Label Studio video region, read the way both the export and the training set need them.

A `videorectangle` result carries its labels itself, or a `labels` result with the same id (its companion)
does. Pure, no Django.
"""


def region_labels(result: dict, value: dict, companions: dict) -> list:
    """The region's labels (its own, else its companion's); [] when neither holds a list."""
    labels = value.get('labels') or (companions.get(result.get('id')) or {}).get('labels')
    return labels if isinstance(labels, list) else []
