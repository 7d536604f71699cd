namespace ERCache.Replay.Replay;

/// <summary>What the replay adds to the trace: the towers' capacity, the events of the timeline, and the width of
/// the time series' windows. The default is today's replay: unbounded towers, no events.</summary>
internal sealed class ReplayTimeline
{
    public static readonly TimeSpan DefaultWindow = TimeSpan.FromSeconds(10);

    public static ReplayTimeline Unbounded { get; } = new();

    /// <summary>Each host's tower per model name (any case); a model without one has unbounded capacity.</summary>
    public IReadOnlyDictionary<string, TowerCost> Towers { get; init; } = new Dictionary<string, TowerCost>();

    public IReadOnlyList<ReplayEvent> Events { get; init; } = [];

    public TimeSpan Window { get; init; } = DefaultWindow;

    /// <summary>How long before each version event the next version is named as <c>Rollout:NextVersion</c> (warmed on
    /// spare capacity); null: the version changes cold.</summary>
    public TimeSpan? WarmAhead { get; init; }

    /// <summary>Each host keeps snapshots of its tiers (<c>ERCache:Snapshots</c>) in a directory of its own: a restarted
    /// host starts from what it wrote when it stopped.</summary>
    public bool Snapshots { get; init; }

    /// <summary>With a version event, users switch to the next version gradually from the event over this long
    /// (<c>Rollout:SwitchAt</c>, <c>SwitchOver</c>), and <c>Version</c> changes at its end; null: all at once.</summary>
    public TimeSpan? SwitchOver { get; init; }

    /// <summary><c>Rollout:MaxConcurrency</c> while warming; null for the library's default.</summary>
    public int? WarmConcurrency { get; init; }

    public bool HasCapacity => Towers.Count > 0;

    public TowerCost? TowerOf(string model) =>
        Towers.FirstOrDefault(t => string.Equals(t.Key, model, StringComparison.OrdinalIgnoreCase)).Value;
}
