using Microsoft.Extensions.Time.Testing;
using ERCache.Inference;
using ERCache.Replay.Traces;

namespace ERCache.Replay.Replay;

/// <summary>
/// The replay's user tower: a vector derived from (user, time) — with <c>--drift</c>, the user's
/// <see cref="DriftingEmbedding"/> at that moment — or a failure for the users the trace marks. It is told the window's
/// users and their fail flags before each call (one window is in flight at a time).
/// </summary>
internal sealed class ReplayInference(FakeTimeProvider clock, DateTimeOffset start, DriftingEmbedding? drift = null) : IEmbeddingInference
{
    private long _attempts;
    private long _failures;
    private long _background;

    /// <summary>The moving embeddings, or null when vectors do not drift.</summary>
    public DriftingEmbedding? Drift => drift;

    /// <summary>Milliseconds since the trace began, on the replay's clock.</summary>
    public long NowMs => (long)(clock.GetUtcNow() - start).TotalMilliseconds;

    /// <summary>Set while the replay runs the cache's background calls (refresh ahead): their attempts are counted as
    /// refreshes too.</summary>
    public bool InBackground { get; set; }

    /// <summary>Attempts made in the background since the last call.</summary>
    public long TakeBackground()
    {
        long background = _background;
        _background = 0;
        return background;
    }

    public ReadOnlyMemory<bool> Failing { get; set; }

    public ReadOnlyMemory<long> Users { get; set; }

    public long TakeAttempts(out long failures)
    {
        failures = _failures;
        long attempts = _attempts;
        _attempts = 0;
        _failures = 0;
        return attempts;
    }

    public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
    {
        long nowMs = NowMs;
        var users = batch.UserIds.Span;
        var windowUsers = Users.Span;
        var failing = Failing.Span;
        for (int i = 0; i < batch.Count; i++)
        {
            _attempts++;
            _background += InBackground ? 1 : 0;
            int at = windowUsers.IndexOf(users[i]);
            if (at >= 0 && failing[at])
            {
                _failures++;
                batch.Fail(i);
                continue;
            }

            var row = batch.GetRow(i).Span;
            if (drift is not null)
            {
                drift.Fill(users[i], nowMs, row);
                continue;
            }

            // Deterministic in (user, time) and finite; one division per row, not per value.
            float first = (users[i] % 1000 * 0.001f) + (nowMs % 1000 * 1e-6f);
            for (int j = 0; j < row.Length; j++)
            {
                row[j] = first + (j * 0.001f);
            }
        }

        return ValueTask.CompletedTask;
    }
}
