namespace ERCache;

/// <summary>
/// The largest values ERCache accepts for its settings; configuration beyond them fails at start-up (and a reload beyond
/// them is rejected) with a message naming the setting's path and the value.
/// </summary>
public static class ERCacheLimits
{
    /// <summary>Largest <see cref="ModelOptions.Dimensions"/>: 16,384.</summary>
    public const int MaxDimensions = 16384;

    /// <summary>Largest <see cref="InferenceOptions.MaxBatchSize"/> and <see cref="RegionalOptions.MaxBatchSize"/>: 65,536.</summary>
    public const int MaxBatchSize = 65536;

    /// <summary>Largest <see cref="TierOptions.Capacity"/>: 2^28 − 1 entries per tier (the slot index's reach).</summary>
    public const int MaxTierCapacity = (1 << 28) - 1;

    /// <summary>The longest <see cref="InferenceOptions.Timeout"/> and <see cref="InferenceOptions.HardTimeout"/>: .NET
    /// timers (the deadline and the hard limit are timers) take at most 4,294,967,294 ms, about 49.7 days.</summary>
    public static readonly TimeSpan MaxInferenceTimeout = TimeSpan.FromMilliseconds(uint.MaxValue - 1);
}
