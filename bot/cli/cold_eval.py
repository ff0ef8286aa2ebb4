"""`anirec evaluate --cold N`: how well titles the model never trained on are recommended.

Trains a fresh model on the database's lists minus N withheld anime (nothing is saved or
served), then ranks the withheld titles for users held out of training, beside random, the
user's genre profile and LightFM when it is installed (protocol: ``training.cold``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bot.cli.common import console, open_store, out, say, settings


def _log(message: str) -> None:
    console.print(message, markup=False, highlight=False)


def evaluate_cold_start(
    n: int,
    choose: str,
    reveal: int,
    seed: int,
    max_users: int | None,
    epochs: int | None,
    as_json: bool,
) -> None:
    from training.cold import ColdConfig, format_table
    from training.cold_rankers import evaluate_cold
    from training.data import NoTrainingDataError, store_relatives, user_keys

    cfg = settings()
    with open_store(cfg) as store:
        arrays = store.ratings.arrays()
        keys = user_keys(store)
        catalog = store.catalog.all()
        relatives = store_relatives(store, catalog)  # the franchise graph training uses
    if arrays.user_ids.size == 0:
        raise NoTrainingDataError(
            "no ratings to evaluate on: import a data set first (`anirec import ratings PATH`)"
        )
    ratings = pd.DataFrame(
        {
            "user": np.array([keys.get(int(u), str(u)) for u in arrays.user_ids], dtype=object),
            "anime_id": arrays.anime_ids,
            "score": arrays.scores.astype(np.float32),
        }
    )
    protocol = ColdConfig(n=n, choose=choose, reveal=reveal, seed=seed, max_users=max_users)
    report = evaluate_cold(
        ratings,
        catalog,
        protocol,
        epochs=epochs,
        device=cfg.device,
        log=None if as_json else _log,
        relatives=relatives,
    )
    if as_json:
        out.print_json(json.dumps(report.to_json()))
        return
    say(format_table(report))
