"""Content vectors: catalog titles without list rows are recommendable, explained, and built
from content alone (real training on the small world, real SQLite, nothing mocked)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recommender import Recommender
from recommender.blend import NEW_TITLE_WEIGHTS, BlendWeights, blend_scores, new_title_order
from recommender.content import ContentVocab
from recommender.growth import extend_model
from recommender.scoring import ServingModel
from storage.repository import Store
from storage.rows import Anime
from tests.fixtures_model import SmallWorld, small_catalog, small_ratings

NEW_MECHA = 9001  # in the catalog at training time, no list rows
NEW_HORROR = 9002
LATE_MECHA = 9003  # imported after training


def _studio(a: Anime) -> Anime:
    """Mecha titles come from studio Sunrise, the others from studio Other Works."""
    studio = "Sunrise" if "Mecha" in a.genres[:1] else "Other Works"
    return replace(a, studios=(studio,), year=2015, season="SPRING", duration_s=24 * 60)


def _store(store: Store, anime: list[Anime]) -> None:
    """Catalog rows with the fields the anime-offline-database import fills (season, year,
    duration, studios): the row upsert writes the main columns only."""
    store.catalog.upsert(anime)
    store.write_batch(
        lambda c: c.executemany(
            "UPDATE anime SET status=?, season=?, year=?, duration_s=?, studios=? WHERE anime_id=?",
            [
                (a.status, a.season, a.year, a.duration_s, ", ".join(a.studios), a.anime_id)
                for a in anime
            ],
        )
    )


def _new(anime_id: int, genre: str, title: str, studio: str, **kw: object) -> Anime:
    return Anime(
        anime_id, title, (genre,), "TV", 12, None, 0, False,
        status="ONGOING", season="SPRING", year=2024, duration_s=24 * 60, studios=(studio,),
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SmallWorld:
    from training.train import train_from_store

    tmp = Path(tmp_path_factory.mktemp("content"))
    store = Store(tmp / "world.db")
    anime, by_genre, nsfw = small_catalog()
    anime = [_studio(a) for a in anime]
    anime += [
        _new(NEW_MECHA, "Mecha", "Steel Saga Zero", "Sunrise"),
        _new(NEW_HORROR, "Horror", "Night Hollow", "Other Works"),
    ]
    _store(store, anime)
    rows = small_ratings(by_genre, nsfw)

    def write(conn):  # type: ignore[no-untyped-def]
        mapping = store.users.ensure_dataset({r[0] for r in rows}, conn)
        store.ratings.upsert_rows(
            conn, [(mapping[u], a, s, None) for u, a, s, _ in rows], "dataset"
        )
        return mapping

    store.write_batch(write)
    summary = train_from_store(store, epochs=25, seed=0, device="cpu", out=tmp / "m.safetensors")
    return SmallWorld(store, Path(summary.checkpoint), tmp / "world.db", anime, by_genre, nsfw)


def _mecha_fan(world: SmallWorld, name: str) -> int:
    mecha = world.anime_by_genre["Mecha"]
    ratings: dict[int, int | None] = {a: 9 + (a % 2) for a in mecha[:12]}
    ratings.update({a: 3 for a in world.anime_by_genre["Horror"][:3]})
    return world.new_user(name, ratings)


def test_catalog_titles_without_rows_get_content_vectors(world: SmallWorld) -> None:
    model = ServingModel.load(world.checkpoint)
    assert model.content_vocab is not None
    for aid in (NEW_MECHA, NEW_HORROR):
        assert aid in model.index_of and model.is_new(model.index_of[aid])
    assert not model.is_new(model.index_of[world.anime_by_genre["Mecha"][0]])
    assert int(model.is_new_mask.sum()) == 2
    # the content path puts the new mecha title among the mecha titles
    v = model.item_vectors
    mecha = [model.index_of[a] for a in world.anime_by_genre["Mecha"]]
    horror = [model.index_of[a] for a in world.anime_by_genre["Horror"]]
    new = v[model.index_of[NEW_MECHA]]
    assert (v[mecha] @ new).mean() > (v[horror] @ new).mean()


def test_untrained_title_like_the_users_likes_is_recommended_and_explained(
    world: SmallWorld,
) -> None:
    rec = Recommender(world.store, world.checkpoint)
    user = _mecha_fan(world, "mecha-fan")
    picks = rec.recommend(user, k=6)
    ids = [p.anime.anime_id for p in picks]
    assert NEW_MECHA in ids
    assert NEW_HORROR not in ids
    pick = picks[ids.index(NEW_MECHA)]
    assert pick.reason.startswith("New · Spring 2024")
    assert "Mecha" in pick.reason and "studio Sunrise" in pick.reason
    assert 1.0 <= pick.predicted_score <= 10.0
    # the rating head predicts it above the horror newcomer for this user
    assert rec.predict(user, NEW_MECHA) > rec.predict(user, NEW_HORROR)
    similar = [s.anime.anime_id for s in rec.similar(world.anime_by_genre["Mecha"][0], k=8)]
    assert NEW_MECHA in similar


def test_title_imported_after_training_is_recommendable_without_retrain(
    world: SmallWorld,
) -> None:
    rec = Recommender(world.store, world.checkpoint)
    user = _mecha_fan(world, "mecha-fan-2")
    assert LATE_MECHA not in [p.anime.anime_id for p in rec.recommend(user, k=20)]
    before = rec.info()
    _store(world.store, [_new(LATE_MECHA, "Mecha", "Steel Saga One", "Sunrise")])
    assert rec.refresh_catalog() == 1
    info = rec.info()
    assert before is not None and info is not None
    assert info.n_anime == before.n_anime + 1 and info.version == before.version
    picks = rec.recommend(user, k=6)
    ids = [p.anime.anime_id for p in picks]
    assert LATE_MECHA in ids
    assert "studio Sunrise" in picks[ids.index(LATE_MECHA)].reason
    assert rec.refresh_catalog() == 0  # nothing new: nothing grows
    # (k=6 as above: the two mecha newcomers have the same features, so they tie)
    night = rec.anime_night([user, _mecha_fan(world, "mecha-fan-3")], k=6)
    assert LATE_MECHA in [g.anime.anime_id for g in night]


def test_member_count_and_mean_score_change_nothing_for_new_titles(world: SmallWorld) -> None:
    model = ServingModel.load(world.checkpoint)
    plain = _new(LATE_MECHA, "Mecha", "Steel Saga One", "Sunrise")
    famous = replace(plain, members=5_000_000, mal_score=9.9)
    vocab = model.content_vocab
    assert vocab is not None
    assert np.array_equal(vocab.features([plain]), vocab.features([famous]))
    a, b = extend_model(model, [plain]), extend_model(model, [famous])
    hist = world.anime_by_genre["Mecha"][:5]
    sa, sb = a.fold_in(hist, [9] * 5), b.fold_in(hist, [9] * 5)
    assert np.array_equal(a.predict(sa), b.predict(sb))
    assert np.array_equal(a.rank(sa), b.rank(sb))


def test_extended_checkpoint_round_trip(world: SmallWorld, tmp_path: Path) -> None:
    model = extend_model(
        ServingModel.load(world.checkpoint),
        [_new(LATE_MECHA, "Mecha", "Steel Saga One", "Sunrise")],
    )
    path = model.save(tmp_path / "grown.safetensors")
    loaded = ServingModel.load(path)
    assert np.array_equal(loaded.anime_ids, model.anime_ids)
    assert np.array_equal(loaded.is_new_mask, model.is_new_mask)
    assert loaded.content_vocab == model.content_vocab
    hist = world.anime_by_genre["Mecha"][:5] + [LATE_MECHA]
    sa, sb = model.fold_in(hist, [9] * 6), loaded.fold_in(hist, [9] * 6)
    assert np.array_equal(model.predict(sa), loaded.predict(sb))
    assert np.array_equal(model.rank(sa), loaded.rank(sb))
    assert extend_model(loaded, loaded_catalog(world)) is loaded  # nothing new: same model


def loaded_catalog(world: SmallWorld) -> list[Anime]:
    return world.store.catalog.all()


def test_vocabulary_round_trip_and_unknowns() -> None:
    anime = [
        Anime(1, "A", ("Mecha",), "TV", 24, 8.0, 10, False, tags=("robots",), studios=("S",)),
        Anime(2, "B", ("Mecha", "Drama"), "Movie", 1, 7.0, 5, False, tags=("robots",)),
        Anime(3, "C", ("Drama",), None, None, None, 0, False, tags=("robots",), studios=("S",)),
    ]
    vocab = ContentVocab.fit(anime, min_count=2)
    assert vocab.tags == ("robots",) and vocab.studios == ("s",)
    assert not vocab.use_year and not vocab.use_duration
    assert ContentVocab.from_json(vocab.to_json()) == vocab
    feats = vocab.features([*anime, None])
    names = vocab.names()
    assert feats.shape == (4, len(names))
    assert feats[2, names.index("type:?")] and feats[3, names.index("episodes:?")]
    assert feats[0, names.index("episodes:14")] and feats[1, names.index("episodes:1")]
    newcomer = Anime(4, "D", ("Mecha", "Isekai"), "ONA", 12, None, 0, False, studios=("New",))
    row = vocab.features([newcomer])[0]
    assert row[names.index("genre:mecha")] and row[names.index("type:?")]
    assert row.sum() == 3  # mecha, unknown type, 7-13 episodes: unseen names add nothing


def test_standin_loss_trains_the_standin_and_leaves_the_learned_side_alone() -> None:
    """The stand-in term reaches only the stand-in path: trained anime are scored exactly as
    by a model trained without it, while the stand-in parameters do move."""
    from recommender.model import get_config
    from tests import model_synth
    from training.train import fit

    df, _ = model_synth.ratings(120, seed=5)
    cfg = get_config("default", epochs=2, batch_size=64, dim=8, genre_hidden=8, knn_topk=0)
    cfg = cfg.with_(ease_min_count=2)
    plain = fit(df, model_synth.catalog(), cfg.with_(content_weight=0.0), seed=1).serving
    taught = fit(df, model_synth.catalog(), cfg, seed=1).serving
    state = dict(taught.module.state_dict())
    before = plain.module.state_dict()
    learned = [
        k for k in state if k.startswith(("item_emb", "item_bias", "genre.", "enc_", "rank"))
    ]
    assert learned and all(np.allclose(before[k], state[k], atol=1e-5) for k in learned)
    standin = [k for k in state if k.startswith(("standin.", "content_bias"))]
    assert standin and not all(np.allclose(before[k], state[k]) for k in standin)
    ids, scores = plain.anime_ids[:5].tolist(), [9, 8, 7, 9, 10]
    pa, pb = plain.predict(plain.fold_in(ids, scores)), taught.predict(taught.fold_in(ids, scores))
    assert np.allclose(pa, pb, atol=1e-4)


def test_new_titles_are_ordered_by_the_new_title_weights_and_trained_scores_stay(
    world: SmallWorld,
) -> None:
    model = ServingModel.load(world.checkpoint)
    mecha = world.anime_by_genre["Mecha"][:8]
    state = model.fold_in(mecha, [9] * len(mecha))
    rank = model.rank(state)
    pred, watch, ease = model.predict(state), model.watch_logits(state), model.ease_scores(state)
    w = model.blend.at(len(mecha))
    args = (pred, watch, ease, model.mu, model.score_scale, model.log_popularity)
    blend = blend_scores(w, *args)
    new = model.borrowed.new
    trained = np.flatnonzero(~model.is_new_mask)
    np.testing.assert_array_equal(rank[trained], blend[trained])  # warm scoring untouched
    # as a group the new titles sit where the blend puts them
    assert rank[new].mean() == pytest.approx(blend[new].mean(), abs=1e-5)
    assert rank[new].std() == pytest.approx(blend[new].std(), abs=1e-5)
    n = NEW_TITLE_WEIGHTS
    order = n.rating * (pred[new] - model.mu) / model.score_scale
    order = order + n.rank * watch[new] + n.ease * ease[new]
    assert list(np.argsort(rank[new])) == list(np.argsort(order))
    assert rank[model.index_of[NEW_MECHA]] > rank[model.index_of[NEW_HORROR]]


def test_new_title_order_keeps_the_groups_level_and_spread() -> None:
    group = np.array([[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 1.0, 1.0]], np.float32)
    order = np.array([[4.0, 1.0, 3.0, 2.0], [7.0, 7.0, 7.0, 7.0]], np.float32)
    out = new_title_order(group, order)
    assert list(np.argsort(out[0])) == list(np.argsort(order[0]))
    assert out[0].mean() == pytest.approx(1.5) and out[0].std() == pytest.approx(group[0].std())
    np.testing.assert_array_equal(out[1], group[1])  # a flat order says nothing: blend kept
    # one user at a time gives the same as the batch
    np.testing.assert_allclose(new_title_order(group[0], order[0]), out[0])
    # blend_scores reorders only the given indices, in one user's and in a batch's rows
    rating = np.zeros((2, 6), np.float32)
    watch = np.array([[0, 0, 9, 0, 0, 0], [0, 0, 1, 2, 3, 0]], np.float32)
    ease = np.array([[5, 4, 1, 2, 3, 0], [5, 4, 3, 2, 1, 0]], np.float32)
    w = BlendWeights(ease=1.0, rank=0.01, rating=0.0)
    pop = np.zeros(6, np.float32)
    new = np.array([2, 3, 4])
    plain = blend_scores(w, rating, watch, ease, 0.0, 1.0, pop)
    both = blend_scores(w, rating, watch, ease, 0.0, 1.0, pop, new)
    np.testing.assert_array_equal(both[:, [0, 1, 5]], plain[:, [0, 1, 5]])
    assert list(np.argsort(-plain[0, new])) == [2, 1, 0]  # the blend: by item-to-item
    assert list(np.argsort(-both[0, new])) == [0, 2, 1]  # watch + 3 x ease: 12, 6, 9
    one = blend_scores(w, rating[1], watch[1], ease[1], 0.0, 1.0, pop, new)
    np.testing.assert_allclose(one, both[1], rtol=1e-6)
