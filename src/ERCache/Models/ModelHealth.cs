using System.Numerics;

namespace ERCache.Models;

/// <summary>
/// A model's running totals for the health check: results served and fallbacks among them. Kept across reloads of the
/// same model name. Counting a hit costs one interlocked add on a stripe chosen by the managed thread id (as many stripes
/// as processors, each on its own cache line), so threads hitting at once rarely share a counter.
/// </summary>
internal sealed class ModelHealth
{
    private const int LongsPerLine = 8;
    private readonly long[] _served;
    private readonly int _mask;
    private long _fallbacks;

    public ModelHealth()
    {
        int stripes = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, Environment.ProcessorCount));
        _mask = stripes - 1;
        _served = new long[(stripes + 1) * LongsPerLine]; // one spare line in front: stripe 0 shares no line with the header
    }

    /// <summary>Results served so far (every source).</summary>
    public long Served
    {
        get
        {
            long sum = 0;
            for (int i = LongsPerLine; i < _served.Length; i += LongsPerLine)
            {
                sum += Volatile.Read(ref _served[i]);
            }

            return sum;
        }
    }

    /// <summary>Fallbacks served so far.</summary>
    public long Fallbacks => Interlocked.Read(ref _fallbacks);

    public void CountServed() =>
        Interlocked.Increment(ref _served[((Environment.CurrentManagedThreadId & _mask) + 1) * LongsPerLine]);

    public void CountServed(int results) =>
        Interlocked.Add(ref _served[((Environment.CurrentManagedThreadId & _mask) + 1) * LongsPerLine], results);

    public void CountFallback() => Interlocked.Increment(ref _fallbacks);
}
