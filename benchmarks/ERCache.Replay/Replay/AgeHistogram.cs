using System.Numerics;

namespace ERCache.Replay.Replay;

/// <summary>
/// Ages of served vectors in milliseconds, in bounded memory (under 1 MB): exact below 65,536 ms, then 512 buckets per
/// power of two (within 0.2%). Percentiles are nearest-rank and report the lower edge of the bucket that holds the rank.
/// </summary>
internal sealed class AgeHistogram
{
    private const int ExactBits = 16;
    private const int ExactBelow = 1 << ExactBits;
    private const int SubBucketBits = 9; // 512 per power of two
    private const int SubBuckets = 1 << SubBucketBits;
    private long[]? _counts;

    public long Count { get; private set; }

    public void Record(long ageMs)
    {
        ageMs = Math.Max(0, ageMs);
        _counts ??= new long[ExactBelow + ((64 - ExactBits) * SubBuckets)];
        _counts[Index(ageMs)]++;
        Count++;
    }

    public void Add(AgeHistogram other)
    {
        if (other._counts is null)
        {
            return;
        }

        _counts ??= new long[other._counts.Length];
        for (int i = 0; i < _counts.Length; i++)
        {
            _counts[i] += other._counts[i];
        }

        Count += other.Count;
    }

    /// <summary>The nearest-rank <paramref name="percent"/> percentile, or <see langword="null"/> when empty.</summary>
    public long? Percentile(double percent)
    {
        if (Count == 0 || _counts is null)
        {
            return null;
        }

        long rank = Math.Max(1, (long)Math.Ceiling(percent / 100 * Count));
        long seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return LowerEdge(i);
            }
        }

        return LowerEdge(_counts.Length - 1);
    }

    private static int Index(long value)
    {
        if (value < ExactBelow)
        {
            return (int)value;
        }

        int exponent = BitOperations.Log2((ulong)value); // >= ExactBits
        int sub = (int)(value >> (exponent - SubBucketBits)) & (SubBuckets - 1);
        return ExactBelow + ((exponent - ExactBits) * SubBuckets) + sub;
    }

    private static long LowerEdge(int index)
    {
        if (index < ExactBelow)
        {
            return index;
        }

        int exponent = ((index - ExactBelow) / SubBuckets) + ExactBits;
        long sub = (index - ExactBelow) % SubBuckets;
        return (SubBuckets + sub) << (exponent - SubBucketBits);
    }
}
