"""The claim checker's tables agree: every kind of claim has its keys and its parser, and every metric a lesson
may name is measured (a record's float, or one of metric_measures.METRIC_MEASURES)."""

from stepviz.lessons import claims
from stepviz.run import metric_measures


def test_every_kind_of_claim_has_its_keys_and_its_parser():
    assert set(claims.KIND_KEYS) == set(claims.CLAIM_PARSERS)
    assert all(key in claims.CLAIM_KEYS for keys in claims.KIND_KEYS.values() for key in keys)


def test_every_metric_a_claim_may_name_is_measured_one_way():
    computed, recorded = set(metric_measures.METRIC_MEASURES), set(claims.RECORD_METRICS)
    assert computed == set(claims.DERIVED_METRICS)
    assert not computed & recorded
    assert computed | recorded == set(claims.METRICS)
