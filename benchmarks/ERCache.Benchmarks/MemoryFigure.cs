using ERCache.Storage;
using System.Globalization;
using ERCache.Diagnostics;
using ERCache.Tiers;
using Microsoft.Extensions.Caching.Memory;

namespace ERCache.Benchmarks;

/// <summary>
/// Bytes held per entry by a full tier of 1,000,000 users of 256 dimensions, per format and slab strategy, against a
/// <see cref="MemoryCache"/> holding a <c>float[]</c> per user: <see cref="GC.GetTotalMemory(bool)"/> after a full
/// collection, before and after filling, divided by the entries. Run with <c>--memory [entries]</c>.
/// </summary>
internal static class MemoryFigure
{
    private const int Dimensions = 256;

    public static void Run(int entries)
    {
        var vector = Enumerable.Range(0, Dimensions).Select(i => MathF.Cos(i)).ToArray();
        Console.WriteLine($"Bytes per entry, {entries:N0} entries of {Dimensions} dimensions (GC.GetTotalMemory(true) delta / entries)");
        Console.WriteLine();
        Console.WriteLine("| Store | Format | Row bytes | Bytes per entry | Overhead per entry | vs Float32 (same strategy) |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|");

        double peerFloat32 = Measure(() =>
        {
            var cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = entries });
            for (long u = 0; u < entries; u++)
            {
                using var entry = cache.CreateEntry(u);
                entry.Size = 1;
                entry.Value = vector.ToArray();
            }

            return cache;
        });
        Row("MemoryCache<long, float[]>", "Float32", Dimensions * sizeof(float), peerFloat32, peerFloat32);

        using var metrics = new ERCacheMetrics(null);
        foreach (var eviction in new[] { "Fifo", "Sieve", "Lru" })
        {
            double float32 = 0;
            foreach (var format in new[] { "Float32", "Float16", "Int8" })
            {
                EmbeddingTier? built = null;
                double perEntry = Measure(() => built = FullTier.Create(entries, eviction, format, vector, metrics));
                float32 = format == "Float32" ? perEntry : float32;
                Row($"ERCache {eviction} (reports {built!.BytesPerEntry:F1})", format, StorageFormats.RowBytes(Enum.Parse<StorageFormat>(format), Dimensions), perEntry, float32);
            }
        }
    }

    private static double Measure(Func<object> fill)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = GC.GetTotalMemory(forceFullCollection: true);
        var held = fill();
        long after = GC.GetTotalMemory(forceFullCollection: true);
        GC.KeepAlive(held);
        int count = held switch
        {
            MemoryCache m => m.Count,
            EmbeddingTier t => t.Count,
            _ => throw new InvalidOperationException(),
        };
        (held as IDisposable)?.Dispose(); // MemoryCache's scan timer would otherwise keep it alive into the next figure
        return (after - before) / (double)count;
    }

    private static void Row(string store, string format, int rowBytes, double perEntry, double float32) =>
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"| {store} | {format} | {rowBytes} | {perEntry:F1} | {perEntry - rowBytes:F1} | {perEntry / float32:F3} |"));
}
