using ERCache.Inference;

namespace ERCache.Replay.Replay;

/// <summary>A tower call that failed because the timeline has a tower outage at its start.</summary>
internal sealed class TowerOutageException(string model) : Exception($"The tower of model '{model}' is in an outage of the replay's timeline.");

/// <summary>
/// One host's user tower for one model: a vector derived from (user, time) — with <c>--drift</c>, the user's
/// <see cref="DriftingEmbedding"/> at that moment — or a failure for the users whose latest request the trace marks,
/// and for every call that starts in an outage window of the timeline (at once, as a tower that is down refuses).
/// Without a <see cref="TowerCost"/> a call completes at once (unbounded capacity); with one it completes when the
/// replay's clock reaches its end.
/// </summary>
/// <remarks>It counts what it is asked: every user of a call is an inference, counted in the window the call starts
/// in; a user with no request waiting on this host (a refresh ahead) is a background inference.</remarks>
internal sealed class ReplayInference(
    SimulationClock clock, string model, ModelReport report, TimeSeries series, DriftingEmbedding? drift = null, TowerCost? cost = null, TimeSeries? hostSeries = null)
    : IEmbeddingInference
{
    private readonly Dictionary<long, int> _waiting = []; // users with a request in flight on this host, and how many
    private readonly HashSet<long> _failing = []; // users whose latest request the trace marks as failing
    private readonly List<(long StartMs, long EndMs)> _outages = [];

    public DriftingEmbedding? Drift => drift;

    /// <summary>Calls that start in [<paramref name="startMs"/>, <paramref name="endMs"/>) fail as a whole.</summary>
    public void AddOutage(long startMs, long endMs) => _outages.Add((startMs, endMs));

    /// <summary>A request of these users arrives on this host; <paramref name="fails"/> says which of them the trace fails.</summary>
    public void Requested(ReadOnlySpan<long> users, ReadOnlySpan<bool> fails)
    {
        for (int i = 0; i < users.Length; i++)
        {
            _waiting[users[i]] = _waiting.GetValueOrDefault(users[i]) + 1;
            if (fails[i])
            {
                _failing.Add(users[i]);
            }
            else
            {
                _failing.Remove(users[i]);
            }
        }
    }

    /// <summary>The request of these users was answered.</summary>
    public void Answered(ReadOnlySpan<long> users)
    {
        foreach (long user in users)
        {
            int left = _waiting[user] - 1;
            if (left == 0)
            {
                _waiting.Remove(user);
            }
            else
            {
                _waiting[user] = left;
            }
        }
    }

    public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
    {
        long startMs = clock.NowMs;
        var users = batch.UserIds.Span;
        long background = 0;
        foreach (long user in users)
        {
            background += _waiting.ContainsKey(user) ? 0 : 1;
        }

        report.Inferences += users.Length;
        report.Refreshes += background;
        foreach (var window in (ReadOnlySpan<SeriesWindow?>)[series.At(startMs), hostSeries?.At(startMs)])
        {
            if (window is not null)
            {
                window.RequestPathInferences += users.Length - background;
                window.BackgroundInferences += background;
            }
        }

        if (_outages.Exists(o => startMs >= o.StartMs && startMs < o.EndMs))
        {
            report.InferenceFailures += batch.Count;
            throw new TowerOutageException(model); // a tower that is down refuses at once
        }

        if (cost is null)
        {
            Fill(batch);
            return ValueTask.CompletedTask;
        }

        var done = new TaskCompletionSource(); // continuations run on the replay's thread, at the call's end
        clock.Schedule(clock.Now + cost.Of(batch.Count).Ticks, () =>
        {
            Fill(batch);
            done.SetResult();
        });
        return new ValueTask(done.Task);
    }

    /// <summary>Fills the call's rows at the clock's current time, or fails the users the trace fails.</summary>
    private void Fill(InferenceBatch batch)
    {
        long nowMs = clock.NowMs;
        var users = batch.UserIds.Span;
        for (int i = 0; i < batch.Count; i++)
        {
            if (_failing.Contains(users[i]))
            {
                report.InferenceFailures++;
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
    }
}
