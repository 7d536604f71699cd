using Microsoft.Extensions.Time.Testing;
using ERCache.Inference;
using ERCache.Replay.Traces;

namespace ERCache.Replay.Replay;

/// <summary>
/// The replay's user tower: a vector derived from (user, time), or a failure for the users the trace marks. It is
/// told the window's users and their fail flags before each call (one window is in flight at a time).
/// </summary>
internal sealed class ReplayInference(FakeTimeProvider clock, DateTimeOffset start) : IEmbeddingInference
{
    private long _attempts;
    private long _failures;

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
        long nowMs = (long)(clock.GetUtcNow() - start).TotalMilliseconds;
        var users = batch.UserIds.Span;
        var windowUsers = Users.Span;
        var failing = Failing.Span;
        for (int i = 0; i < batch.Count; i++)
        {
            _attempts++;
            int at = windowUsers.IndexOf(users[i]);
            if (at >= 0 && failing[at])
            {
                _failures++;
                batch.Fail(i);
                continue;
            }

            // Deterministic in (user, time) and finite; one division per row, not per value.
            var row = batch.GetRow(i).Span;
            float first = (users[i] % 1000 * 0.001f) + (nowMs % 1000 * 1e-6f);
            for (int j = 0; j < row.Length; j++)
            {
                row[j] = first + (j * 0.001f);
            }
        }

        return ValueTask.CompletedTask;
    }
}
