"""Writes of segmentation: feature runs, clustering runs, personas, and the consent purge.

Feature runs and clustering runs are created here (validated, audited, enqueued after commit)
and executed by Celery tasks that call the `*_execute` functions with ids; executing a finished
run again does nothing. Consent is checked here: features are computed only for customers
`consent.selectors.customers_allowed_for("profiling")` returns, and a clustering run reads only
the feature rows of customers still allowed when it starts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cdp.api.errors import ApplicationError
from cdp.audit.services import audit_record
from segmentation import features as feature_sql
from segmentation.ml.names import ALGORITHMS, check_params
from segmentation.models import (
    FEATURE_VERSION,
    ClusterAssignment,
    ClusteringRun,
    CustomerFeatures,
    FeatureRun,
    Persona,
    RunStatus,
)
from segmentation.selectors import (
    DEFAULT_CLUSTER_FEATURES,
    FEATURES_BY_NAME,
    clustering_run_previous,
)

if TYPE_CHECKING:
    import numpy as np

    from segmentation.ml.storage import StoredModel

# NumPy, SciPy and scikit-learn (`segmentation.ml`'s numeric modules) are imported inside the
# functions that compute, not here: this module loads in every web, management and Celery
# process at start-up (admin, app ready, tasks), and most of them never cluster.

logger = logging.getLogger(__name__)

# Customers per feature statement. Each chunk scans the events once, so chunks trade a scan
# each for bounded transactions and visible progress: worth it only for very large populations.
FEATURE_CHUNK = 1_000_000
MATRIX_BLOCK_BYTES = 8 * 1024 * 1024
COPY_BLOCK = 100_000
PROJECTION_SAMPLE = 2_000
MIN_POPULATION = 3


# -- features --------------------------------------------------------------------------------


def feature_run_create(
    *, actor: str, as_of: dt.datetime | None = None, enqueue: bool = True
) -> FeatureRun:
    """Queue a computation of every allowed customer's features as of `as_of` (default now)."""
    with transaction.atomic():
        run = FeatureRun.objects.create(as_of=as_of or timezone.now(), requested_by=actor[:150])
        audit_record(
            actor=actor,
            action="segmentation.feature_run.create",
            object_type="segmentation.featurerun",
            object_id=str(run.id),
            details={"as_of": run.as_of.isoformat()},
        )
        if enqueue:
            from segmentation.tasks import feature_run_execute as task

            run_id = str(run.id)
            transaction.on_commit(lambda: task.delay(run_id))
    return run


def feature_run_execute(*, run_id: uuid.UUID, chunk_size: int = FEATURE_CHUNK) -> FeatureRun | None:
    """Compute the features in chunks of customer ids (one transaction each, so progress shows
    and no statement holds a huge snapshot), then remove rows of customers no longer allowed and
    score RFM, in one final transaction (in the chunk's own when there is one chunk). Safe to
    run twice: a finished run is left alone and an interrupted one starts over (every chunk is
    an upsert)."""
    run = FeatureRun.objects.filter(pk=run_id).first()
    if run is None or run.status == RunStatus.SUCCEEDED:
        return run
    bounds = feature_sql.chunk_bounds(chunk_size)
    FeatureRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
        chunks_total=len(bounds),
        chunks_done=0,
        progress=0,
        customers=0,
        error="",
    )
    written = 0
    # One chunk (populations up to FEATURE_CHUNK): RFM is scored in the chunk's statement and
    # the stale rows go in the same transaction, so readers see the old run or the whole new one.
    single = len(bounds) == 1
    try:
        for done, (low, high) in enumerate(bounds, start=1):
            with transaction.atomic():
                written += feature_sql.features_compute_chunk(
                    run_id=run.pk, as_of=run.as_of, low=low, high=high, score_rfm=single
                )
                if single:
                    _feature_run_finish(run, written=written, chunks=done, scored=True)
                    break
            FeatureRun.objects.filter(pk=run.pk).update(
                chunks_done=done, customers=written, progress=int(95 * done / len(bounds))
            )
        if not single:
            with transaction.atomic():
                _feature_run_finish(run, written=written, chunks=len(bounds), scored=False)
    except Exception as exc:
        FeatureRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED, error=type(exc).__name__, finished_at=timezone.now()
        )
        raise
    with connection.cursor() as cursor:
        # Fresh statistics before anyone reads the table: after a bulk write the planner would
        # otherwise guess a hundred rows and pick nested loops for a clustering run's million.
        cursor.execute(f"ANALYZE {CustomerFeatures._meta.db_table}")
    run.refresh_from_db()
    return run


def _feature_run_finish(run: FeatureRun, *, written: int, chunks: int, scored: bool) -> None:
    """Remove stale rows, score RFM unless the chunk did over the final population, and mark
    the run done; inside the caller's transaction."""
    stale = feature_sql.features_remove_stale(run_id=run.pk)
    if not scored or stale.written_by_run:
        feature_sql.rfm_scores_update()
    FeatureRun.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED,
        progress=100,
        chunks_done=chunks,
        customers=written,
        removed=stale.removed,
        finished_at=timezone.now(),
    )


def features_compute(*, actor: str, as_of: dt.datetime | None = None) -> FeatureRun:
    """Create and execute a feature run in this process (management command, tests, bench)."""
    run = feature_run_create(actor=actor, as_of=as_of, enqueue=False)
    result = feature_run_execute(run_id=run.pk)
    assert result is not None
    return result


def derived_data_purge(customer_id: uuid.UUID, purpose_code: str) -> None:
    """Consent withdrawal hook: a customer no longer allowed for profiling loses their features
    and cluster assignments at once. Idempotent; other purposes are not ours."""
    if purpose_code != feature_sql.PROFILING:
        return
    with transaction.atomic():
        CustomerFeatures.objects.filter(customer_id=customer_id).delete()
        ClusterAssignment.objects.filter(customer_id=customer_id).delete()


# -- clustering ------------------------------------------------------------------------------


def model_signing_key() -> bytes:
    """`CDP_MODEL_SIGNING_KEY` when set, else a key derived from SECRET_KEY for this use only."""
    configured = getattr(settings, "CDP_MODEL_SIGNING_KEY", "")
    if configured:
        return configured.encode() if isinstance(configured, str) else bytes(configured)
    return hmac.new(
        settings.SECRET_KEY.encode(), b"cdp segmentation model signing", hashlib.sha256
    ).digest()


def _invalid(code: str, message: str, field: str) -> ApplicationError:
    return ApplicationError(code, message, fields={field: [message]})


def clustering_run_validate(
    *, algorithm: str, params: Mapping[str, Any], features: Iterable[str]
) -> list[str]:
    """Check a run's configuration before queueing it; returns the feature list."""
    names = list(features) or list(DEFAULT_CLUSTER_FEATURES)
    if algorithm not in ALGORITHMS:
        raise _invalid(
            "clustering_algorithm_unknown",
            f"algorithm must be one of {list(ALGORITHMS)}",
            "algorithm",
        )
    unknown = [n for n in names if n not in FEATURES_BY_NAME or not FEATURES_BY_NAME[n].numeric]
    if unknown:
        raise _invalid(
            "clustering_feature_unknown",
            f"not numeric features: {', '.join(sorted(unknown))}",
            "features",
        )
    if len(set(names)) != len(names):
        raise _invalid("clustering_feature_repeated", "a feature is listed twice", "features")
    if not isinstance(params, Mapping):
        raise _invalid("clustering_params_invalid", "params must be an object", "params")
    try:
        check_params(algorithm, params)
        for key, value in params.items():
            if not isinstance(value, int | float | str) or isinstance(value, bool):
                raise ValueError(f"param {key} must be a number or a string")
    except (ValueError, TypeError) as exc:
        raise _invalid("clustering_params_invalid", str(exc), "params") from exc
    return names


def clustering_run_create(
    *,
    actor: str,
    algorithm: str = "kmeans",
    params: Mapping[str, Any] | None = None,
    features: Iterable[str] = (),
    random_state: int = 0,
    name: str = "",
    trigger: str = "admin",
    enqueue: bool = True,
) -> ClusteringRun:
    """Validate and queue a clustering run over the current features (ApplicationError if the
    configuration is invalid); the task starts after commit."""
    params = dict(params or {})
    names = clustering_run_validate(algorithm=algorithm, params=params, features=features)
    with transaction.atomic():
        run = ClusteringRun.objects.create(
            name=name[:100],
            algorithm=algorithm,
            params=params,
            features=names,
            random_state=random_state,
            requested_by=actor[:150],
            trigger=trigger,
        )
        audit_record(
            actor=actor,
            action="segmentation.clustering_run.create",
            object_type="segmentation.clusteringrun",
            object_id=str(run.id),
            details={"algorithm": algorithm, "params": params, "features": names},
        )
        if enqueue:
            from segmentation.tasks import clustering_run_execute as task

            run_id = str(run.id)
            transaction.on_commit(lambda: task.delay(run_id))
    return run


def _progress(run: ClusteringRun, progress: int, stage: str) -> None:
    ClusteringRun.objects.filter(pk=run.pk).update(progress=progress, stage=stage)


def feature_matrix(
    *, features: list[str], version: int = FEATURE_VERSION
) -> tuple[list[str], np.ndarray]:
    """Stream the allowed customers' feature rows from PostgreSQL into a float matrix (NaN for
    missing), ordered by customer id, with the customer ids as strings.

    COPY ... TO STDOUT in text format, parsed block by block by NumPy's C reader: about four
    times faster than building a Python row per customer, and memory stays at one block of
    text plus the matrix."""
    import numpy as np

    allowed_sql, allowed_params = feature_sql.allowed_customers_sql()
    columns = ", ".join(f'f."{name}"::float8' for name in features)  # names validated
    sql = (
        f"SELECT f.customer_id, {columns} FROM segmentation_customerfeatures f "  # noqa: S608
        f"WHERE f.version = %s AND f.customer_id IN ({allowed_sql}) ORDER BY f.customer_id"
    )
    ids: list[str] = []
    blocks: list[np.ndarray] = []

    def parse(text: bytes) -> None:
        lines = text.split(b"\n")
        ids.extend(line[:36].decode() for line in lines)
        values = b"\n".join(line[37:] for line in lines).replace(b"\\N", b"nan")
        block = np.loadtxt(io.BytesIO(values), delimiter="\t", dtype=np.float64, ndmin=2)
        blocks.append(block.reshape(len(lines), len(features)))

    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT", [version, *allowed_params]) as copy:
            buffer = bytearray()
            for data in copy:
                buffer += data
                if len(buffer) >= MATRIX_BLOCK_BYTES:
                    cut = buffer.rindex(b"\n")
                    parse(bytes(buffer[:cut]))
                    buffer = bytearray(buffer[cut + 1 :])
            rest = bytes(buffer).rstrip(b"\n")
            if rest:
                parse(rest)
    if not blocks:
        return [], np.zeros((0, len(features)))
    return ids, np.vstack(blocks)


def _write_assignments(run: ClusteringRun, ids: list[str], labels: np.ndarray) -> None:
    """COPY in text format, each block of rows formatted as one string: several times faster
    than INSERT, and than adapting every value with `write_row`."""
    table = ClusterAssignment._meta.db_table
    run_id = str(run.pk)
    values = labels.tolist()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        with raw.copy(f"COPY {table} (run_id, customer_id, cluster) FROM STDIN") as copy:
            for start in range(0, len(ids), COPY_BLOCK):
                end = start + COPY_BLOCK
                block = zip(ids[start:end], values[start:end], strict=True)
                copy.write("".join(f"{run_id}\t{c}\t{label}\n" for c, label in block))


def _stability(run: ClusteringRun, previous: ClusteringRun) -> tuple[float | None, int]:
    """ARI against the previous run over the customers in both, from a contingency table
    counted in the database (one GROUP BY; no per-customer rows leave PostgreSQL)."""
    import numpy as np

    from segmentation.ml.cluster import stability_from_contingency

    table = ClusterAssignment._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p.cluster, c.cluster, count(*) FROM {table} c JOIN {table} p "  # noqa: S608
            "ON p.customer_id = c.customer_id AND p.run_id = %s WHERE c.run_id = %s "
            "GROUP BY 1, 2",
            [previous.pk, run.pk],
        )
        cells = cursor.fetchall()
    shared = sum(n for _, _, n in cells)
    if shared < 2:
        return None, shared
    rows = {a for a, _, _ in cells}
    cols = {b for _, b, _ in cells}
    row_of = {a: i for i, a in enumerate(sorted(rows))}
    col_of = {b: j for j, b in enumerate(sorted(cols))}
    contingency = np.zeros((len(row_of), len(col_of)))
    for a, b, n in cells:
        contingency[row_of[a], col_of[b]] = n
    return stability_from_contingency(contingency), shared


def clustering_run_execute(*, run_id: uuid.UUID) -> ClusteringRun | None:
    """Run the clustering: stream the matrix, preprocess and cluster with `segmentation.ml`,
    then store assignments, personas, metrics, stability, a 2-D projection sample and the
    signed model in one transaction. A finished run is left alone; a failed one records the
    error class (no data) and re-raises."""
    run = ClusteringRun.objects.filter(pk=run_id).first()
    if run is None or run.status == RunStatus.SUCCEEDED:
        return run
    ClusteringRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), progress=5, stage="loading", error=""
    )
    try:
        _clustering_run_body(run)
    except Exception as exc:
        message = str(exc) if isinstance(exc, ApplicationError | ValueError) else ""
        ClusteringRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED,
            stage="failed",
            error=(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)[:500],
            finished_at=timezone.now(),
        )
        raise
    run.refresh_from_db()
    return run


def _clustering_run_body(run: ClusteringRun) -> None:
    from segmentation.ml.cluster import run_clustering
    from segmentation.ml.personas import personas as compute_personas
    from segmentation.ml.preprocess import preprocess_fit_transform
    from segmentation.ml.projection import project_2d
    from segmentation.ml.storage import StoredModel, model_dumps

    names = list(run.features)
    ids, X = feature_matrix(features=names, version=run.feature_version)
    if len(ids) < MIN_POPULATION:
        raise ApplicationError(
            "clustering_population_too_small",
            f"{len(ids)} customers have features; a run needs at least {MIN_POPULATION}. "
            "Compute features first.",
        )
    _progress(run, 20, "preprocessing")
    prep, Xt = preprocess_fit_transform(X, names)
    _progress(run, 35, "clustering")
    result = run_clustering(
        Xt, algorithm=run.algorithm, params=run.params, random_state=run.random_state
    )
    _progress(run, 75, "personas")
    profiles = compute_personas(
        X,
        result.labels,
        names,
        roles=_roles(names),
    )
    projection = project_2d(Xt, sample_size=PROJECTION_SAMPLE, random_state=run.random_state)
    stored = StoredModel(
        pipeline=prep.pipeline,
        clusterer=result.model,
        feature_names=prep.feature_names,
        log_features=prep.log_features,
        metadata={"run": str(run.pk), "algorithm": run.algorithm, "k": result.k},
    )
    model_bytes = model_dumps(stored, key=model_signing_key())
    _progress(run, 85, "saving")
    previous = clustering_run_previous(run=run)
    with transaction.atomic():
        ClusterAssignment.objects.filter(run=run).delete()  # a retried run starts clean
        Persona.objects.filter(run=run).delete()
        _write_assignments(run, ids, result.labels)
        Persona.objects.bulk_create(
            Persona(
                run=run,
                cluster=p.cluster,
                label=p.label,
                size=p.size,
                share=p.share,
                medians=p.medians,
                difference=p.difference,
                relative=p.relative,
            )
            for p in profiles
        )
        ari, shared = _stability(run, previous) if previous else (None, 0)
        ClusteringRun.objects.filter(pk=run.pk).update(
            status=RunStatus.SUCCEEDED,
            progress=100,
            stage="done",
            population=len(ids),
            k=result.k,
            metrics=result.metrics,
            preprocessing={
                "log_features": list(prep.log_features),
                "skewness": prep.skewness,
                "skew_threshold": prep.skew_threshold,
                "clip": prep.clip,
            },
            projection={
                "x": [round(v, 4) for v in projection.coords[:, 0].tolist()],
                "y": [round(v, 4) for v in projection.coords[:, 1].tolist()],
                "cluster": result.labels[projection.indices].tolist(),
                "explained_variance_ratio": list(projection.explained_variance_ratio),
            },
            previous_run=previous,
            stability_ari=ari,
            stability_shared=shared if previous else None,
            sklearn_version=result.metrics["sklearn_version"],
            model=model_bytes,
            finished_at=timezone.now(),
        )


def _roles(names: list[str]) -> Any:
    from segmentation.ml.personas import RfmRoles

    def pick(name: str) -> str | None:
        return name if name in names else None

    return RfmRoles(
        recency=pick("recency_days"),
        frequency=pick("frequency"),
        monetary=pick("monetary"),
        tenure=pick("tenure_days"),
    )


def clustering_model_load(*, run: ClusteringRun) -> StoredModel:
    """The run's fitted model, after checking its signature and versions."""
    from segmentation.ml.storage import model_loads

    if not run.model:
        raise ApplicationError(
            "clustering_model_missing", "this run has no stored model", status=404
        )
    return model_loads(bytes(run.model), key=model_signing_key())


def persona_update(*, persona: Persona, actor: str, name: str, description: str) -> Persona:
    """Rename or describe a persona (the automatic label stays as it was)."""
    with transaction.atomic():
        persona.name = name[:100]
        persona.description = description
        persona.save(update_fields=["name", "description"])
        audit_record(
            actor=actor,
            action="segmentation.persona.update",
            object_type="segmentation.persona",
            object_id=str(persona.pk),
            details={"run": str(persona.run_id), "cluster": persona.cluster},
        )
    return persona


def scheduled_refresh(*, actor: str = "system:beat") -> ClusteringRun:
    """What beat runs: features as of now, then a default k-means run over them."""
    features_compute(actor=actor)
    run = clustering_run_create(
        actor=actor, algorithm="kmeans", params={}, trigger="schedule", enqueue=False
    )
    result = clustering_run_execute(run_id=run.pk)
    assert result is not None
    return result
