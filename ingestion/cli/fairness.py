"""``sdoh fairness-check``: gate a model's predictions on fairness thresholds (exit code 3)."""

from __future__ import annotations

import click

#: Exit code when a threshold is crossed (usage errors exit 2, the project's errors 1).
THRESHOLD_CROSSED = 3


@click.command("fairness-check")
@click.option("--predictions", "predictions_path", type=click.Path(exists=True, dir_okay=False),
              required=True, help="Parquet file: outcome, 0/1 decision, score and group columns.")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False),
              help="Thresholds YAML; default sdoh_sources/catalog/fairness_thresholds.yaml.")
@click.option("--group-column", "group_columns", multiple=True, metavar="COLUMN",
              help="Attribute to check, each on its own (repeatable); default the config's list.")
@click.option("--label-column", default="y_true", show_default=True, help="Observed 0/1 outcome.")
@click.option("--prediction-column", default="y_pred", show_default=True, help="0/1 decision.")
@click.option("--score-column", default="y_prob", show_default=True,
              help="Predicted probability, for calibration; ignored when the file lacks it.")
@click.option("--time-column", metavar="COLUMN",
              help="Also check each vintage (its values) or time window (with --window).")
@click.option("--window", metavar="ALIAS", help="Bin --time-column by this period: Y, Q or M.")
def fairness_check(predictions_path, config, group_columns, label_column, prediction_column,
                   score_column, time_column, window) -> None:
    """Check a model's fairness gaps against thresholds; exit 3 when one is crossed.

    Computes demographic parity difference and ratio, equalized odds and equal opportunity
    differences and the calibration gap between the groups of each attribute, overall and,
    with --time-column, per vintage or window; prints every check and then the crossed ones.

    \b
    Example:
      sdoh fairness-check --predictions preds.parquet --config thresholds.yaml \\
                          --group-column race_ethnicity --time-column vintage
    """
    import pandas as pd

    from equity.fairness import fairness_check as check
    from equity.fairness import load_thresholds

    if window and not time_column:
        raise click.UsageError("--window needs --time-column")
    predictions = pd.read_parquet(predictions_path)
    checks = check(predictions, load_thresholds(config), group_columns=group_columns,
                   label=label_column, prediction=prediction_column,
                   score=score_column if score_column in predictions.columns else None,
                   time_column=time_column, window=window)
    click.echo(checks.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    crossed = checks[~checks["passed"]]
    if crossed.empty:
        click.echo(f"all {len(checks)} fairness checks passed")
        return
    for row in crossed.itertuples():
        sign = "<=" if row.bound == "max" else ">="
        click.echo(f"CROSSED {row.group_column} [{row.window}]: {row.metric} = {row.value:.3f}, "
                   f"needs {sign} {row.limit:g}", err=True)
    raise click.exceptions.Exit(THRESHOLD_CROSSED)
