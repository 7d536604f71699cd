using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using ERCache.Diagnostics;
using ERCache.Tiers;

namespace ERCache.Benchmarks;

/// <summary>
/// <c>--write-tail</c>: the latency of each write while an empty direct tier fills, with huge pages and without, in
/// alternating rounds (one tier each, after a collection that returns the last one's memory). A mean (BenchmarkDotNet's
/// <see cref="FillBenchmarks"/>) hides what a few writes pay: the first touch of a fresh page, the growth of the tier's
/// arrays, a collection. This times every write and reports how many took over 50 µs and over 1 ms, the upper
/// quantiles and the slowest. Optionally paced (writes per second), as a service's misses arrive, rather than in a
/// tight loop.
/// </summary>
internal static class WriteTail
{
    private const int Dimensions = 256;

    public static void Run(int entries, int rounds, int writesPerSecond)
    {
        using var metrics = new ERCacheMetrics(null);
        Console.WriteLine($"{entries:N0} entries of {Dimensions} dimensions, {(writesPerSecond > 0 ? $"{writesPerSecond:N0} writes/s" : "unpaced")}, {Environment.ProcessorCount} CPUs, .NET {Environment.Version}");
        for (int round = 1; round <= rounds; round++)
        {
            foreach (bool hugePages in new[] { true, false })
            {
                var latencies = Fill(metrics, entries, hugePages, writesPerSecond, out double totalMs);
                string slowest = string.Join(' ', Enumerable.Range(0, entries).Where(u => latencies[u] > 1000).Take(12)
                    .Select(u => string.Create(CultureInfo.InvariantCulture, $"{u}:{latencies[u] / 1000:F1}")));
                Array.Sort(latencies);
                Console.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"round {round} huge pages {(hugePages ? "on " : "off")}  fill {totalMs,7:F1} ms  p50 {Quantile(latencies, 0.5),5:F2}  p99 {Quantile(latencies, 0.99),5:F2}  " +
                    $"p99.9 {Quantile(latencies, 0.999),6:F1}  p99.99 {Quantile(latencies, 0.9999),7:F1}  max {latencies[^1],8:F1} µs  " +
                    $"over 50 µs {Over(latencies, 50),4}  over 1 ms {Over(latencies, 1000),3}"));
                if (slowest.Length > 0)
                {
                    Console.WriteLine($"  writes over 1 ms (write number:ms, first 12): {slowest}"); // which slab, which 2 MB
                }
            }
        }
    }

    /// <summary>Each write's time in microseconds.</summary>
    private static double[] Fill(ERCacheMetrics metrics, int entries, bool hugePages, int writesPerSecond, out double totalMs)
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        var vector = new float[Dimensions];
        using var tier = FullTier.Create(entries: 0, "Lru", "Float32", vector, metrics, capacity: entries, hugePages: hugePages);
        var latencies = new double[entries];
        double ticksPerWrite = writesPerSecond > 0 ? (double)Stopwatch.Frequency / writesPerSecond : 0;
        long start = Stopwatch.GetTimestamp();
        for (int u = 0; u < entries; u++)
        {
            long due = start + (long)(u * ticksPerWrite);
            while (Stopwatch.GetTimestamp() < due)
            {
                Thread.SpinWait(10);
            }

            vector[0] = u;
            long before = Stopwatch.GetTimestamp();
            tier.Write(u, vector, writtenAt: 0);
            latencies[u] = (Stopwatch.GetTimestamp() - before) * 1e6 / Stopwatch.Frequency;
        }

        totalMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        return latencies;
    }

    private static double Quantile(double[] sorted, double q) => sorted[(int)Math.Min(sorted.Length - 1, q * sorted.Length)];

    private static int Over(double[] latencies, double microseconds) => latencies.Count(l => l > microseconds);
}
