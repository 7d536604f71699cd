namespace ERCache.Diagnostics;

/// <summary>
/// Bucket advice for every histogram, so an exporter's defaults (0, 5, 10, ... 10000, made for milliseconds) do not
/// put every inference into the first bucket: boundaries fitted to each histogram's unit and range.
/// </summary>
internal static class HistogramBuckets
{
    /// <summary>Durations in seconds, from 10 µs (a regional round trip on loopback) to 10 s (a hard timeout).</summary>
    public static readonly IReadOnlyList<double> Seconds =
        [1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    /// <summary>Ages of served vectors in seconds, from 100 ms to a day (direct TTLs are seconds to minutes,
    /// failover TTLs hours).</summary>
    public static readonly IReadOnlyList<double> Ages =
        [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400];

    /// <summary>Drift (1 - cosine), from 1e-6 to 1, two buckets per decade.</summary>
    public static readonly IReadOnlyList<double> Drift =
        [1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1];

    /// <summary>Users per delegate call, powers of two up to 1,024.</summary>
    public static readonly IReadOnlyList<int> BatchSizes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
}
