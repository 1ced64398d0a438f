"""What a ``:predict`` answer may hold, by request format (`loadbench.protocols.bodies`)."""

from __future__ import annotations

from loadbench.protocols.bodies import predict_answer_keys, predict_body


def test_a_row_format_request_is_answered_with_predictions_only() -> None:
    assert predict_answer_keys(predict_body([1, 2])) == ("predictions",)
    assert predict_answer_keys({"instances": [[1]], "inputs": [[1]]}) == ("predictions",)


def test_a_columnar_request_may_be_answered_as_tf_serving_or_kserve_answers_it() -> None:
    # TF Serving: {"outputs": ...}; KServe's model server: {"predictions": ...} to every v1 request.
    assert predict_answer_keys(predict_body({"inputs": [[1, 2]]})) == ("outputs", "predictions")
