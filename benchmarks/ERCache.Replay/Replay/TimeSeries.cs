namespace ERCache.Replay.Replay;

/// <summary>One model's counts per window of trace time (requests by arrival, inferences by the call's start).</summary>
internal sealed class TimeSeries(long windowMs)
{
    private readonly List<SeriesWindow> _windows = [];

    public long WindowMs => windowMs;

    public IReadOnlyList<SeriesWindow> Windows => _windows;

    /// <summary>The window holding <paramref name="ms"/> (milliseconds since the trace began), created when new.</summary>
    public SeriesWindow At(long ms)
    {
        int index = (int)(Math.Max(0, ms) / windowMs);
        while (_windows.Count <= index)
        {
            _windows.Add(new SeriesWindow());
        }

        return _windows[index];
    }

    /// <summary>Adds <paramref name="other"/> window by window (another shard's users, or another model).</summary>
    public void Add(TimeSeries other)
    {
        for (int i = 0; i < other._windows.Count; i++)
        {
            At(i * windowMs).Add(other._windows[i]);
        }
    }
}

/// <summary>What happened in one window: requests by the source that answered them, inferences, and the queue.</summary>
internal sealed class SeriesWindow
{
    private const double DriftScale = 1e9; // drift is summed in fixed point, so shards add up exactly as one thread

    public long Requests { get; set; }

    public long RequestPathInferences { get; set; }

    public long BackgroundInferences { get; set; }

    public long Direct { get; set; }

    public long Regional { get; set; }

    public long Fresh { get; set; }

    public long Failover { get; set; }

    public long Fallback { get; set; }

    /// <summary>Requests whose inference missed the deadline (answered from failover or as a fallback).</summary>
    public long DeadlineMisses { get; set; }

    /// <summary>Requests the scheduler shed (its queue was full).</summary>
    public long Shed { get; set; }

    /// <summary>The longest inference queue one host had in the window, sampled as each request arrives.</summary>
    public long MaxQueue { get; set; }

    public long DriftCount { get; private set; }

    private long _driftSum;

    public double? DriftMean => DriftCount == 0 ? null : _driftSum / DriftScale / DriftCount;

    public long Inferences => RequestPathInferences + BackgroundInferences;

    public void RecordDrift(double drift)
    {
        _driftSum += (long)Math.Round(drift * DriftScale);
        DriftCount++;
    }

    /// <summary>Back to zero (a scratch window reused for each request group).</summary>
    public void Clear()
    {
        Requests = RequestPathInferences = BackgroundInferences = Direct = Regional = Fresh = Failover = Fallback = DeadlineMisses = Shed = MaxQueue = 0;
        DriftCount = 0;
        _driftSum = 0;
    }

    public void Add(SeriesWindow other)
    {
        Requests += other.Requests;
        RequestPathInferences += other.RequestPathInferences;
        BackgroundInferences += other.BackgroundInferences;
        Direct += other.Direct;
        Regional += other.Regional;
        Fresh += other.Fresh;
        Failover += other.Failover;
        Fallback += other.Fallback;
        DeadlineMisses += other.DeadlineMisses;
        Shed += other.Shed;
        MaxQueue = Math.Max(MaxQueue, other.MaxQueue);
        DriftCount += other.DriftCount;
        _driftSum += other._driftSum;
    }
}
