namespace ERCache.Models;

/// <summary>What a snapshot's prefetch from the regional store did with its users (see
/// <see cref="ModelRuntime.PrefetchRegionalAsync"/>).</summary>
/// <param name="Direct">Users whose store value was fresh for the direct tier (and written to both tiers).</param>
/// <param name="FailoverOnly">Users whose store value was only young enough for the failover tier.</param>
/// <param name="Missing">Users the store had no usable value for (absent, removed, refused, too old, stamped in the
/// future beyond <c>Regional:MaxClockSkew</c>).</param>
/// <param name="Unavailable">Users not read: the store did not answer.</param>
internal readonly record struct RegionalPrefetchCounts(long Direct, long FailoverOnly, long Missing, long Unavailable)
{
    public static RegionalPrefetchCounts operator +(RegionalPrefetchCounts a, RegionalPrefetchCounts b) =>
        new(a.Direct + b.Direct, a.FailoverOnly + b.FailoverOnly, a.Missing + b.Missing, a.Unavailable + b.Unavailable);
}
