using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using ERCache.Diagnostics;
using ERCache.Models;
using ERCache.Tiers;
using ERCache.Tiers.Snapshots;

namespace ERCache.Benchmarks;

/// <summary>
/// <c>--load-tail</c>: what a snapshot load at start-up costs the requests' writes into the same tier. One thread
/// restores a snapshot of a full tier into an empty one (<see cref="SnapshotKeeper.Restore"/>, as the warm restart
/// does) while another writes other users into that tier at a steady rate, as a service's misses arrive, and times
/// each of its writes. Reports the request writes' quantiles during the load, how many took over 1 ms, the slowest,
/// and how long the load took. Each round runs the tier with huge pages and without, and, as the baseline, the same load
/// into another tier than the requests write (the load's cost to them through the CPUs and memory alone, without the
/// shared lock).
/// </summary>
internal static class LoadTail
{
    private const int Dimensions = 256;

    public static void Run(int entries, int rounds, int requestWritesPerSecond)
    {
        using var metrics = new ERCacheMetrics(null);
        var vector = Enumerable.Range(0, Dimensions).Select(i => MathF.Sin(i)).ToArray();
        string directory = Path.Combine(Path.GetTempPath(), $"ercache-load-tail-{Environment.ProcessId}");
        Directory.CreateDirectory(directory);
        try
        {
            var identity = new SnapshotIdentity("m", "1", Dimensions, StorageFormat.Float32, TierKind.Direct);
            string path = Path.Combine(directory, "m.direct.ercache-snapshot");
            using (var full = FullTier.Create(entries, "Lru", "Float32", vector, metrics))
            {
                TierSnapshotFile.Write(full, identity, path, 0, writtenAt => writtenAt, CancellationToken.None);
            }

            Console.WriteLine(
                $"a snapshot of {entries:N0} entries of {Dimensions} dimensions restored while requests write {requestWritesPerSecond:N0} users/s " +
                $"into it, {Environment.ProcessorCount} CPUs, .NET {Environment.Version}");
            for (int round = 1; round <= rounds; round++)
            {
                foreach (var (hugePages, sameTier) in new[] { (true, true), (false, true), (true, false) })
                {
                    var (latencies, loadMs) = Load(metrics, path, identity, entries, vector, requestWritesPerSecond, hugePages, sameTier);
                    Array.Sort(latencies);
                    Console.WriteLine(string.Create(
                        CultureInfo.InvariantCulture,
                        $"round {round} huge pages {(hugePages ? "on " : "off")} {(sameTier ? "same tier " : "other tier")}  load {loadMs,6:F0} ms  " +
                        $"request writes {latencies.Length,6}  p50 {Quantile(latencies, 0.5),6:F1}  p99 {Quantile(latencies, 0.99),7:F1}  " +
                        $"p99.9 {Quantile(latencies, 0.999),7:F1}  max {(latencies.Length > 0 ? latencies[^1] : 0),8:F1} µs  over 1 ms {latencies.Count(l => l > 1000),3}"));
                }
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The request writes' times (µs) while the load ran, and the load's time.</summary>
    private static (double[] Latencies, double LoadMs) Load(
        ERCacheMetrics metrics, string path, SnapshotIdentity identity, int entries, float[] vector, int requestWritesPerSecond, bool hugePages, bool sameTier)
    {
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        using var tier = FullTier.Create(0, "Lru", "Float32", vector, metrics, capacity: 2 * entries, hugePages: hugePages);
        using var other = sameTier ? null : FullTier.Create(0, "Lru", "Float32", vector, metrics, capacity: 2 * entries, hugePages: hugePages);
        var loaded = other ?? tier;
        var row = (float[])vector.Clone();
        var latencies = new List<double>(capacity: 1 << 16);
        double loadMs = 0;
        var loader = new Thread(() =>
        {
            long started = Stopwatch.GetTimestamp();
            var outcome = SnapshotKeeper.Restore(loaded, path, identity, TimeProvider.System, ttlNow: 0, ttl: long.MaxValue, _ => false, CancellationToken.None);
            loadMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            if (outcome.Refused is not null || outcome.Loaded != entries)
            {
                throw new InvalidOperationException($"the load restored {outcome.Loaded} of {entries} ({outcome.Refused})");
            }
        });
        loader.Start();
        double ticksPerWrite = (double)Stopwatch.Frequency / requestWritesPerSecond;
        long start = Stopwatch.GetTimestamp();
        for (long n = 0; loader.IsAlive; n++)
        {
            long due = start + (long)(n * ticksPerWrite);
            while (Stopwatch.GetTimestamp() < due)
            {
                Thread.SpinWait(10);
            }

            row[0] = n;
            long before = Stopwatch.GetTimestamp();
            tier.Write(entries + n, row, writtenAt: 1);
            latencies.Add((Stopwatch.GetTimestamp() - before) * 1e6 / Stopwatch.Frequency);
        }

        loader.Join();
        return (latencies.ToArray(), loadMs);
    }

    private static double Quantile(double[] sorted, double q) => sorted.Length == 0 ? 0 : sorted[(int)Math.Min(sorted.Length - 1, q * sorted.Length)];
}
