"""K-state pose HMM: kernels (kernels/hmm.py) and wrappers (tracker/temporal/hmm.py), each
checked against the slow dense references in tests/naive_hmm.py."""
import numpy as np
import pytest
from naive_hmm import dense_viterbi, fixed_lag_reference, path_score
from naive_knn import brute_knn
from naive_knn import structured_shapes as float64_shapes

from kernels import hmm
from tracker.temporal.hmm import FixedLagDecoder, Transitions, decode_benchmark, pose_transitions, viterbi

# ----------------------------------------------------------------------------- helpers

def random_transitions(rng, size, density=0.3, self_loops=True):
    """Random sparse graph with per-source normalised log weights (not symmetric)."""
    mask = rng.random((size, size)) < density
    if self_loops:
        np.fill_diagonal(mask, True)
    mask[np.arange(size), rng.integers(0, size, size)] = True      # every source has an edge
    logits = np.where(mask, rng.normal(size=(size, size)), -np.inf)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return from_dense(logp)


def from_dense(log_trans):
    """Transitions from a dense [i, j] = log P(i -> j) matrix (-inf: no edge)."""
    dst, src = np.nonzero(np.isfinite(log_trans.T))                # row-major: by dst, then src
    indptr = np.zeros(len(log_trans) + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst, minlength=len(log_trans)), out=indptr[1:])
    return Transitions(indptr, src.astype(np.int32), log_trans[src, dst].astype(np.float32))


def random_obs(rng, frames, size, scale=2.0):
    logits = rng.normal(size=(frames, size)) * scale
    return (logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))).astype(np.float32)


def run_stream(decoder, obs):
    out = []
    for frame in obs:
        out += decoder.push(frame)
    return out + decoder.flush()


def structured_shapes(rng, n):
    return float64_shapes(rng, n).astype(np.float32)


# ----------------------------------------------------------------------------- hand-worked

# States 0, 1, 2; P(i -> j), rows sum to 1, and 0 -> 2 / 2 -> 0 are forbidden:
#          to 0   to 1   to 2
# from 0   0.5    0.5    -
# from 1   0.2    0.5    0.3
# from 2   -      0.5    0.5
# Uniform start 1/3; observation likelihoods per frame:
#   t0: [0.6, 0.3, 0.1]   t1: [0.1, 0.2, 0.7]   t2: [0.1, 0.1, 0.8]
# delta_0 = [0.2, 0.1, 1/30]
# delta_1: j=0 max(0.2*.5=.1 [0], .1*.2=.02 [1]) * .1 = 0.01   (from 0)
#          j=1 max(.1 [0], .05 [1], 1/60 [2]) * .2         = 0.02   (from 0)
#          j=2 max(.1*.3=.03 [1], 1/60 [2]) * .7           = 0.021  (from 1)
# delta_2: j=0 max(.01*.5=.005 [0], .02*.2=.004 [1]) * .1  = 0.0005 (from 0)
#          j=1 max(.005 [0], .01 [1], .021*.5=.0105 [2]) * .1 = 0.00105 (from 2)
#          j=2 max(.02*.3=.006 [1], .0105 [2]) * .8        = 0.0084 (from 2)
# Best end state 2 (0.0084); back-pointers 2 <- 2 <- 1: path [1, 2, 2], score log 0.0084
# (= 1/3 * .3 * .3 * .7 * .5 * .8). Per-frame argmax [0, 2, 2] is infeasible (0 -> 2),
# and filtering (lag 0) emits exactly that: argmax delta_0 = 0, delta_1 = 2, delta_2 = 2.
HAND_P = np.array([[0.5, 0.5, 0.0], [0.2, 0.5, 0.3], [0.0, 0.5, 0.5]])
HAND_OBS = np.log(np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.1, 0.1, 0.8]]))


def hand_transitions():
    with np.errstate(divide="ignore"):
        return from_dense(np.log(HAND_P))


def test_hand_worked_three_state_example():
    path, score = viterbi(hand_transitions(), HAND_OBS)
    assert path.dtype == np.int64
    np.testing.assert_array_equal(path, [1, 2, 2])
    assert score == pytest.approx(np.log(0.0084), abs=1e-5)


@pytest.mark.parametrize("lag, expected", [
    (0, [(0, 0), (1, 2), (2, 2)]),                     # filtering: per-step argmax
    (1, [(0, 1), (1, 2), (2, 2)]),                     # one frame of hindsight fixes frame 0
    (5, [(0, 1), (1, 2), (2, 2)]),                     # all at flush = offline Viterbi
])
def test_hand_worked_fixed_lag(lag, expected):
    dec = FixedLagDecoder(hand_transitions(), lag)
    emitted = [dec.push(o) for o in HAND_OBS]
    assert [len(e) for e in emitted] == [int(t >= lag) for t in range(3)]
    assert sum(emitted, []) + dec.flush() == expected


def test_ties_go_to_the_smaller_state_id():
    trans = from_dense(np.full((4, 4), np.log(0.25)))
    obs = np.zeros((3, 4), dtype=np.float32)                       # every path scores the same
    np.testing.assert_array_equal(viterbi(trans, obs)[0], [0, 0, 0])
    np.testing.assert_array_equal(dense_viterbi(trans.dense(), obs)[0], [0, 0, 0])
    for lag, prune in [(0, None), (1, None), (5, None), (1, 2), (5, 4)]:
        assert run_stream(FixedLagDecoder(trans, lag, prune_top=prune), obs) == [(0, 0), (1, 0), (2, 0)]


# ----------------------------------------------------------------------------- vs dense reference

@pytest.mark.parametrize("seed", range(6))
def test_viterbi_matches_dense_reference(seed):
    rng = np.random.default_rng(seed)
    size, frames = int(rng.integers(5, 60)), int(rng.integers(1, 25))
    trans = random_transitions(rng, size, density=rng.uniform(0.05, 0.5))
    obs = random_obs(rng, frames, size)
    init = None if seed % 2 else np.log(rng.dirichlet(np.ones(size))).astype(np.float32)
    path, score = viterbi(trans, obs, init)
    ref_path, ref_score = dense_viterbi(trans.dense(), obs, init)
    np.testing.assert_array_equal(path, ref_path)
    assert score == pytest.approx(ref_score, rel=1e-5, abs=1e-4)
    assert score == pytest.approx(path_score(trans.dense(), obs, path, init), rel=1e-5, abs=1e-4)


def test_sparse_full_graph_equals_dense():
    rng = np.random.default_rng(10)
    templates = structured_shapes(rng, 30)
    trans = pose_transitions(templates, n=29)                      # n = K - 1: every edge
    assert trans.num_edges == 30 * 30
    dense = trans.dense()
    assert np.isfinite(dense).all()
    obs = random_obs(rng, 12, 30)
    path, score = viterbi(trans, obs)
    ref_path, ref_score = dense_viterbi(dense, obs)
    np.testing.assert_array_equal(path, ref_path)
    assert score == pytest.approx(ref_score, rel=1e-5)


@pytest.mark.parametrize("lag", [1, 2, 4])
def test_fixed_lag_matches_brute_force_reference(lag):
    rng = np.random.default_rng(20 + lag)
    trans = random_transitions(rng, 25, density=0.15)
    obs = random_obs(rng, 14, 25, scale=1.0)
    assert run_stream(FixedLagDecoder(trans, lag), obs) == fixed_lag_reference(trans.dense(), obs, lag)


@pytest.mark.parametrize("frames", [1, 3, 9])
@pytest.mark.parametrize("lag", [9, 30])
def test_fixed_lag_equals_offline_when_lag_covers_the_stream(frames, lag):
    rng = np.random.default_rng(frames)
    trans = random_transitions(rng, 20)
    obs = random_obs(rng, frames, 20)
    dec = FixedLagDecoder(trans, lag)
    assert all(dec.push(o) == [] for o in obs)                     # nothing final before flush
    path, _ = viterbi(trans, obs)
    assert dec.flush() == list(enumerate(path.tolist()))
    assert dec.flush() == []


def test_lag_zero_is_filtering():
    rng = np.random.default_rng(30)
    trans = random_transitions(rng, 15, density=0.2)
    obs = random_obs(rng, 8, 15)
    dec = FixedLagDecoder(trans, 0)
    for t, frame in enumerate(obs):
        # frame t's state is the end of the best path over frames 0..t
        assert dec.push(frame) == [(t, int(dense_viterbi(trans.dense(), obs[:t + 1])[0][-1]))]
    assert dec.flush() == []


@pytest.mark.parametrize("lag", [0, 1, 4])
def test_single_frame_stream(lag):
    rng = np.random.default_rng(40)
    trans = random_transitions(rng, 10)
    obs = random_obs(rng, 1, 10)
    best = int(np.argmax(obs[0]))                                  # uniform start
    dec = FixedLagDecoder(trans, lag)
    first = dec.push(obs[0])
    assert first + dec.flush() == [(0, best)]
    assert first == ([(0, best)] if lag == 0 else [])
    np.testing.assert_array_equal(viterbi(trans, obs)[0], [best])


def test_reset_restarts_frame_numbers_and_flush_ends_the_stream():
    rng = np.random.default_rng(50)
    trans = random_transitions(rng, 12)
    obs = random_obs(rng, 6, 12)
    dec = FixedLagDecoder(trans, 2)
    first = run_stream(dec, obs)
    with pytest.raises(ValueError, match="reset"):
        dec.push(obs[0])
    dec.reset()
    assert dec.frames_seen == 0
    assert run_stream(dec, obs) == first
    assert [f for f, _ in first] == list(range(6))


def test_impossible_frame_is_rejected_and_not_added():
    trans = hand_transitions()
    dec = FixedLagDecoder(trans, 1)
    dec.push(HAND_OBS[0])
    with pytest.raises(ValueError, match="frame 1"):
        dec.push(np.full(3, -np.inf))
    assert dec.frames_seen == 1
    assert dec.push(HAND_OBS[1]) == [(0, 1)]
    assert dec.push(HAND_OBS[2]) == [(1, 2)]
    assert dec.flush() == [(2, 2)]
    only = np.full((2, 3), -np.inf)
    only[0, 0] = only[1, 2] = 0.0                                  # 0 then 2: 0 -> 2 forbidden
    with pytest.raises(ValueError, match="finite score up to frame 1"):
        viterbi(trans, only)


# ----------------------------------------------------------------------------- pruning, threads

def test_pruning_with_every_state_kept_equals_unpruned():
    rng = np.random.default_rng(60)
    trans = random_transitions(rng, 40, density=0.1)               # not symmetric: needs transpose
    obs = random_obs(rng, 20, 40)
    obs[3, :5] = -np.inf
    full = run_stream(FixedLagDecoder(trans, 3), obs)
    assert run_stream(FixedLagDecoder(trans, 3, prune_top=40), obs) == full
    assert run_stream(FixedLagDecoder(trans, 3, prune_top=10_000), obs) == full


@pytest.mark.parametrize("keep", [1, 3, 8])
def test_pruning_matches_pruned_dense_reference(keep):
    rng = np.random.default_rng(70 + keep)
    trans = random_transitions(rng, 30, density=0.3)
    obs = random_obs(rng, 10, 30, scale=1.0)
    ref, _ = dense_viterbi(trans.dense(), obs, prune_top=keep)
    got = run_stream(FixedLagDecoder(trans, 10, prune_top=keep), obs)
    assert got == list(enumerate(ref.tolist()))


def test_select_top_breaks_ties_by_smaller_id():
    delta = np.array([0, -1, -3, -1, -np.inf, -1, 0], dtype=np.float32)
    out = np.empty(7, dtype=np.int64)
    assert hmm.select_top(delta, 3, out) == 3
    np.testing.assert_array_equal(out[:3], [0, 1, 6])
    assert hmm.select_top(delta, 7, out) == 6                      # -inf is never active
    np.testing.assert_array_equal(out[:6], [0, 1, 2, 3, 5, 6])


def test_parallel_step_equals_serial():
    rng = np.random.default_rng(80)
    size = 9_000                                                   # three row blocks
    deg = rng.integers(1, 8, size)
    indptr = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(deg, out=indptr[1:])
    indices = np.concatenate([np.sort(rng.choice(size, d, replace=False)) for d in deg])
    trans = Transitions(indptr, indices, rng.normal(size=len(indices)) - 3)
    obs = random_obs(rng, 5, size)
    serial = viterbi(trans, obs, parallel=False)
    par = viterbi(trans, obs, parallel=True)
    np.testing.assert_array_equal(par[0], serial[0])
    assert par[1] == serial[1]


# ----------------------------------------------------------------------------- many states

def test_state_ids_above_65535_survive():
    size = 70_000                                                  # ring: j -> j or j + 1
    src = np.arange(size)
    dst_self, dst_next = src, (src + 1) % size
    dst = np.concatenate([dst_self, dst_next])
    srcs = np.concatenate([src, src])
    order = np.lexsort((srcs, dst))
    indptr = np.arange(size + 1, dtype=np.int64) * 2
    trans = Transitions(indptr, srcs[order], np.full(2 * size, np.log(0.5)))
    assert trans.indices.dtype == np.int32
    want = [69_996, 69_997, 69_998, 69_999, 0]
    obs = np.full((5, size), -30.0, dtype=np.float32)
    obs[np.arange(5), want] = 0.0
    obs[:, 65_000] = -1.0                  # a tempting state that cannot be reached in time
    obs[0, 65_000] = -0.5
    path, score = viterbi(trans, obs)
    assert path.tolist() == want
    assert score == pytest.approx(-np.log(size) + 4 * np.log(0.5), rel=1e-6)
    assert run_stream(FixedLagDecoder(trans, 2), obs) == list(enumerate(want))
    assert run_stream(FixedLagDecoder(trans, 2, prune_top=4), obs) == list(enumerate(want))


# ----------------------------------------------------------------------------- transitions

def test_pose_transitions_graph_weights_and_normalisation():
    rng = np.random.default_rng(90)
    templates = structured_shapes(rng, 120)
    n = 5
    trans = pose_transitions(templates, n)
    assert trans.indptr.dtype == np.int64 and trans.indices.dtype == np.int32
    assert trans.log_weight.dtype == np.float32 and trans.num_states == 120
    knn, knn_d = brute_knn(templates.reshape(120, -1), n)
    sigma = np.median(knn_d[:, 0])
    dense = trans.dense()
    for j in range(120):
        row = trans.indices[trans.indptr[j]:trans.indptr[j + 1]]
        assert (np.diff(row) > 0).all()                            # sorted, no duplicates
        expected = {j} | set(knn[j]) | set(np.flatnonzero((knn == j).any(axis=1)))
        assert set(row.tolist()) == expected                       # self + kNN, symmetrised
    # every source's outgoing probabilities sum to one
    np.testing.assert_allclose(np.exp(dense).sum(axis=1), 1.0, rtol=1e-5)
    # weights fall off as exp(-d^2 / (2 sigma^2)) relative to staying put
    flat = templates.reshape(120, -1).astype(np.float64)
    for i, j in [(0, knn[0][0]), (7, knn[7][-1]), (knn[3][2], 3)]:
        d2 = ((flat[i] - flat[j]) ** 2).sum() / 68
        assert dense[i, j] - dense[i, i] == pytest.approx(-d2 / (2 * sigma ** 2), abs=1e-4)
    assert (np.isfinite(dense) == (dense.T > -np.inf)).all()      # symmetric support
    tighter = pose_transitions(templates, n, sigma=sigma / 2).dense()
    assert (tighter.diagonal() > dense.diagonal()).all()


def test_pose_transitions_ids_above_65535():
    size = 70_000                                                  # shapes along a line
    direction = np.random.default_rng(92).normal(size=136)
    direction /= np.sqrt((direction ** 2).sum() / 68)              # unit RMS step
    base = np.random.default_rng(93).uniform(-0.4, 0.4, 136)
    templates = (base + np.arange(size)[:, None] * 1e-3 * direction).astype(np.float32)
    trans = pose_transitions(templates.reshape(size, 68, 2), 2)
    rows = {j: trans.indices[trans.indptr[j]:trans.indptr[j + 1]].tolist()
            for j in (65_535, 65_536, 69_997, 69_999)}
    assert rows == {65_535: [65_534, 65_535, 65_536], 65_536: [65_535, 65_536, 65_537],
                    69_997: [69_996, 69_997, 69_998, 69_999],     # 69_999's 2nd nearest
                    69_999: [69_997, 69_998, 69_999]}
    out = trans.by_source()
    np.testing.assert_array_equal(out[1][out[0][69_999]:out[0][70_000]], [69_997, 69_998, 69_999])


@pytest.mark.parametrize("make, match", [
    (lambda: Transitions(np.array([1, 2]), np.array([0]), np.array([0.0])), "start at 0"),
    (lambda: Transitions(np.array([0, 1]), np.array([1]), np.array([0.0])), r"\[0, 1\)"),
    (lambda: Transitions(np.array([0, 1]), np.array([0]), np.array([np.nan])), "NaN"),
    (lambda: Transitions(np.array([0, 2]), np.array([0, 0]), np.array([0.0])), "equal length"),
    (lambda: Transitions(np.array([0, 2, 3]), np.array([1, 0, 0]), np.zeros(3)), "ascending"),
    (lambda: Transitions(np.array([0, 2, 2]), np.array([1, 1]), np.zeros(2)), "ascending"),
    (lambda: pose_transitions(np.zeros((4, 68)), 2), "shape"),
    (lambda: pose_transitions(np.zeros((4, 68, 2)), -1), "n must be"),
    (lambda: pose_transitions(np.zeros((4, 68, 2)), 2, sigma=0.0), "sigma"),
    (lambda: viterbi(hand_transitions(), np.zeros((2, 4))), r"shape \(T >= 1, 3\)"),
    (lambda: viterbi(hand_transitions(), np.full((2, 3), np.nan)), "NaN"),
    (lambda: FixedLagDecoder(hand_transitions(), -1), "lag"),
    (lambda: FixedLagDecoder(hand_transitions(), 2, prune_top=0), "prune_top"),
    (lambda: FixedLagDecoder(hand_transitions(), 2).push(np.zeros(4)), r"frame 0 must have shape \(3,\)"),
])
def test_bad_inputs_are_rejected_with_a_clear_message(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_transitions_round_trip(tmp_path):
    trans = hand_transitions()
    again = Transitions.from_dict({k: np.array(v) for k, v in trans.to_dict().items()})
    trans.save(tmp_path / "t.npz")
    loaded = Transitions.load(tmp_path / "t.npz")
    for other in (again, loaded):
        for key, value in trans.to_dict().items():
            np.testing.assert_array_equal(getattr(other, key), value)
            assert getattr(other, key).dtype == value.dtype
    with pytest.raises(ValueError, match="lacks"):
        Transitions.from_dict({"indptr": trans.indptr})


# ----------------------------------------------------------------------------- measurement

def test_decode_benchmark_reports_its_numbers():
    result = decode_benchmark(600, 4, frames=5, lag=3)
    assert result["K"] == 600 and result["edges"] >= 600 * 5
    assert result["build_s"] > 0 and result["ms_per_frame"] > 0
    # window: 4 back-pointer rows + 2 score vectors of 600 (+ the small path buffer)
    assert result["window_mb"] == pytest.approx((4 * 600 * 4 + 2 * 600 * 4 + 4 * 8) / 1e6)


def test_decode_benchmark_on_given_transitions_and_pruned():
    trans = pose_transitions(np.random.default_rng(3).normal(size=(300, 68, 2)).astype(np.float32), 5)
    result = decode_benchmark(1, 1, frames=4, lag=2, prune_top=50, transitions=trans)
    assert result["K"] == 300 and result["n"] == 5 and result["model"] and result["build_s"] is None
    assert result["edges"] == trans.num_edges and result["prune_top"] == 50 and not result["parallel"]
    # pruning adds a (K,) float32 accumulator and M int64 active ids to the window
    assert result["window_mb"] == pytest.approx((3 * 300 * 4 + 2 * 300 * 4 + 3 * 8 + 300 * 4 + 50 * 8) / 1e6)


def test_bench_times_the_model_graph_then_synthetic_sizes_exact_and_pruned():
    from types import SimpleNamespace

    from tracker.config import TemporalConfig
    from tracker.evaluation.bench import decoder_benchmarks
    templates = np.random.default_rng(4).normal(size=(200, 68, 2)).astype(np.float32)
    model = SimpleNamespace(templates=templates, transitions=None)
    rows = decoder_benchmarks(model, TemporalConfig(neighbours=4, prune_top=20), [150])
    assert [(r["K"], r["model"], r["prune_top"]) for r in rows] == [
        (200, True, None), (200, True, 20), (150, False, None), (150, False, 20)]
    assert all(r["ms_per_frame"] > 0 and r["n"] == 4 for r in rows)
