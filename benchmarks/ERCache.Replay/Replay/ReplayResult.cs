namespace ERCache.Replay.Replay;

/// <summary>The outcome of one replay.</summary>
internal sealed class ReplayResult
{
    public required IReadOnlyDictionary<string, ModelReport> Models { get; init; }

    public required ModelReport Total { get; init; }

    public required TimeSpan Elapsed { get; init; }

    /// <summary>Threads the users were replayed on (each with caches of its own).</summary>
    public required int Threads { get; init; }

    /// <summary>Why the replay ran on one thread although more were asked for; null otherwise.</summary>
    public string? SingleThreadReason { get; init; }

    /// <summary>What the hosts sent to and read from the regional store; null without one.</summary>
    public RegionalTraffic? Regional { get; init; }

    /// <summary>Per model, the counts of each window of trace time.</summary>
    public required IReadOnlyDictionary<string, TimeSeries> Series { get; init; }

    /// <summary>Per host, every model's windows added together.</summary>
    public required IReadOnlyList<TimeSeries> HostSeries { get; init; }

    /// <summary>Every model's windows added together.</summary>
    public required TimeSeries TotalSeries { get; init; }

    /// <summary>The towers, events and window the replay ran with.</summary>
    public required ReplayTimeline Timeline { get; init; }

    /// <summary>What each event of the timeline did, in the timeline's order.</summary>
    public required IReadOnlyList<EventSummary> Events { get; init; }

    public double RequestsPerSecond => Total.Requests / Math.Max(Elapsed.TotalSeconds, 1e-9);
}
