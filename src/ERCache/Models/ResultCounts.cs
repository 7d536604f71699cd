using System.Numerics;

namespace ERCache.Models;

/// <summary>
/// The results one model name has served, by <see cref="EmbeddingSource"/>: the health check's totals and the
/// <c>ercache.requests</c> counter, which reads them when a listener collects instead of taking a measurement per
/// request (under OpenTelemetry's SDK that measurement cost a hit 33–37 ns, about half of what the hit costs without a
/// listener; docs/benchmarks.md). Also the regional values its lookups found and refused, for the health check. Kept
/// across reloads and versions of the same model name, so the counts only grow.
/// </summary>
/// <remarks>Counting a result costs one interlocked add on a stripe chosen by the managed thread id: as many stripes as
/// processors, each holding one count per source and 128 bytes from the next, so no two stripes share a cache line
/// whatever the array's alignment, and threads counting at once rarely share a stripe. Reads sum the stripes; a read
/// that races a count sees it or not, never part of it.</remarks>
internal sealed class ResultCounts
{
    private const int StripeLongs = 16; // a stripe: one count per source (five used), two cache lines from the next
    private static readonly int s_sources = Enum.GetValues<EmbeddingSource>().Length;
    private readonly long[] _counts;
    private readonly int _mask;
    private long _regionalFound, _regionalRefused; // one add per regional lookup (a miss path): not striped

    public ResultCounts()
    {
        if (s_sources > StripeLongs / 2)
        {
            throw new InvalidOperationException($"{s_sources} sources do not fit in one cache line of a stripe.");
        }

        int stripes = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, Environment.ProcessorCount));
        _mask = stripes - 1;
        _counts = new long[(stripes + 1) * StripeLongs]; // one spare stripe in front: stripe 0 shares no line with the header
    }

    /// <summary>Sources a stripe counts (every value of <see cref="EmbeddingSource"/>).</summary>
    public static int Sources => s_sources;

    /// <summary>Results served so far, every source.</summary>
    public long Served
    {
        get
        {
            long sum = 0;
            for (int source = 0; source < s_sources; source++)
            {
                sum += Of((EmbeddingSource)source);
            }

            return sum;
        }
    }

    /// <summary>Fallbacks served so far.</summary>
    public long Fallbacks => Of(EmbeddingSource.Fallback);

    /// <summary>Results served so far from <paramref name="source"/>.</summary>
    public long Of(EmbeddingSource source)
    {
        long sum = 0;
        for (int stripe = StripeLongs; stripe < _counts.Length; stripe += StripeLongs)
        {
            sum += Volatile.Read(ref _counts[stripe + (int)source]);
        }

        return sum;
    }

    /// <summary>Regional values the model's lookups found so far (present in the store, whether served or
    /// not).</summary>
    public long RegionalFound => Volatile.Read(ref _regionalFound);

    /// <summary>Regional values found so far that did not decode as the model expects, never served.</summary>
    public long RegionalRefused => Volatile.Read(ref _regionalRefused);

    /// <summary>Counts one regional lookup's <paramref name="found"/> values, <paramref name="refused"/> of them
    /// refused. The found values are added first: a reader that reads <see cref="RegionalRefused"/> before
    /// <see cref="RegionalFound"/> never sees more refused than found.</summary>
    public void CountRegional(int found, int refused)
    {
        if (found > 0)
        {
            Interlocked.Add(ref _regionalFound, found);
        }

        if (refused > 0)
        {
            Interlocked.Add(ref _regionalRefused, refused);
        }
    }

    /// <summary>Counts one result from <paramref name="source"/>.</summary>
    public void Count(EmbeddingSource source) => Interlocked.Increment(ref _counts[Stripe() + (int)source]);

    /// <summary>Counts <paramref name="results"/> results from <paramref name="source"/> in one add (a batch's hits).</summary>
    public void Count(EmbeddingSource source, int results) => Interlocked.Add(ref _counts[Stripe() + (int)source], results);

    private int Stripe() => ((Environment.CurrentManagedThreadId & _mask) + 1) * StripeLongs;
}
