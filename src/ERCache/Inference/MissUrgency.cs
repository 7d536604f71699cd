namespace ERCache.Inference;

/// <summary>How urgently a queued user needs a delegate slot (larger first): what the user loses if shed.</summary>
internal static class MissUrgency
{
    /// <summary>No failover vector: shedding the user means a fallback.</summary>
    public const long NoFailover = long.MaxValue;

    /// <summary>Background work (refresh ahead, drift samples): shed before any request's miss.</summary>
    public const long Background = long.MinValue;

    /// <summary>A user whose failover vector is <paramref name="age"/> old (any unit, the same for every user of a
    /// model): shedding serves that vector, so the older it is, the more the user needs the slot.</summary>
    public static long WithFailover(long age) => Math.Clamp(age, 0, NoFailover - 1);
}
