namespace ERCache.Replay.Replay;

/// <summary>Drift (1 − cosine similarity) of served vectors against fresh inference at the same moment: mean and
/// percentiles, in bounded memory (the age histogram's buckets over drift × 10⁸: exact below 6.5 × 10⁻⁴, within 0.2%
/// above).</summary>
internal sealed class DriftStatistics
{
    private const double Scale = 1e8;
    private readonly AgeHistogram _histogram = new();
    private double _sum;

    public long Count => _histogram.Count;

    public double? Mean => Count == 0 ? null : _sum / Count;

    public void Record(double drift)
    {
        _histogram.Record((long)Math.Round(drift * Scale));
        _sum += drift;
    }

    /// <summary>The nearest-rank percentile (the lower edge of its bucket), or null when nothing was recorded.</summary>
    public double? Percentile(double percent) => _histogram.Percentile(percent) is long value ? value / Scale : null;

    public void Add(DriftStatistics other)
    {
        _histogram.Add(other._histogram);
        _sum += other._sum;
    }
}
