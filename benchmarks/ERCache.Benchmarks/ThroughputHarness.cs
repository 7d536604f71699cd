using System.Diagnostics;
using System.Globalization;
using BitFaster.Caching.Lru;
using Microsoft.Extensions.Caching.Memory;

namespace ERCache.Benchmarks;

/// <summary>
/// Throughput across threads, in the manner of BitFaster.Caching's harness: millions of operations per second for 1,
/// 2, 4 and 8 threads, each thread walking its own pre-drawn Zipf (s = 0.86) key sequence. <b>read</b>: 100,000 keys,
/// all present (every operation a hit); <b>mixed</b>: 1,000,000 keys in stores bounded at 100,000, so the tail misses,
/// runs an instant factory (ERCache: an inline inference) and evicts. Threads above the machine's cores only show
/// contention; take the figures on a machine with more cores. Each cell carries the core-to-core round trip read just
/// before and after it (<see cref="CoreToCore"/>): with two threads the figures follow it. (<c>--throughput [operations
/// per thread]</c>.)
/// </summary>
public static class ThroughputHarness
{
    private const double Skew = 0.86;
    private const int Capacity = 100_000;
    private static readonly TimeSpan PlacementReading = TimeSpan.FromMilliseconds(50);

    public static void Run(int operationsPerThread, int[] threadCounts)
    {
        Console.WriteLine($"Zipf s = {Skew}, {operationsPerThread:N0} operations per thread, {Environment.ProcessorCount} cores; million operations per second.");
        Console.WriteLine("In brackets: a cache line's round trip between two cores just before and just after the cell (--core-to-core).");
        Console.WriteLine("Threads sharing a cache pay it for every line they both write; on a VM it moves as the host moves the vCPUs, so compare cells whose readings agree.");
        foreach (var (workload, keys) in new[] { ("read", Capacity), ("mixed", 10 * Capacity) })
        {
            var sequences = threadCounts.Max() is int most ? Enumerable.Range(0, most).Select(t => Zipf(keys, operationsPerThread, seed: 100 + t)).ToArray() : [];
            Console.WriteLine();
            Console.WriteLine($"| {workload} | {string.Join(" | ", threadCounts.Select(t => $"{t} thread{(t == 1 ? "" : "s")}"))} |");
            Console.WriteLine($"|---|{string.Concat(threadCounts.Select(_ => "---:|"))}");
            foreach (var (name, create) in Caches(workload == "read"))
            {
                var cells = threadCounts.Select(threads =>
                {
                    using var cache = create();
                    // A background collection of the setup's garbage, or the last cell's threads winding down, would take a
                    // core from the reading: collect, then let the machine settle.
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    Thread.Sleep(200);
                    double before = CoreToCore.MedianRoundTrip(PlacementReading);
                    double rate = Measure(cache.Operation, sequences, threads);
                    double after = CoreToCore.MedianRoundTrip(PlacementReading);
                    return string.Create(CultureInfo.InvariantCulture, $"{rate:F2} ({before:F0}/{after:F0} ns)");
                });
                Console.WriteLine($"| {name} | {string.Join(" | ", cells)} |");
            }
        }
    }

    private static IEnumerable<(string Name, Func<Subject> Create)> Caches(bool readOnly)
    {
        if (readOnly)
        {
            yield return ("ConcurrentDictionary (floor)", () =>
            {
                var peers = new PeerCaches(Capacity);
                peers.Populate(Capacity);
                var destination = new ThreadLocal<float[]>(() => new float[PeerCaches.Dimensions]);
                return new Subject(peers, key =>
                {
                    if (peers.Dictionary.TryGetValue(key, out var v))
                    {
                        v.CopyTo(destination.Value!, 0);
                    }
                });
            });
        }

        yield return ("BitFaster ConcurrentTLru", () =>
        {
            var lru = new ConcurrentTLru<long, float[]>(Capacity, TimeSpan.FromDays(1));
            for (long k = 0; k < Capacity; k++)
            {
                lru.AddOrUpdate(k, PeerCaches.NewVector(k));
            }

            var destination = new ThreadLocal<float[]>(() => new float[PeerCaches.Dimensions]);
            return new Subject(null, key => lru.GetOrAdd(key, PeerCaches.NewVector).CopyTo(destination.Value!, 0));
        });
        yield return ("MemoryCache", () =>
        {
            var cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = Capacity });
            var options = new MemoryCacheEntryOptions { Size = 1 };
            for (long k = 0; k < Capacity; k++)
            {
                cache.Set(k, PeerCaches.NewVector(k), options);
            }

            var destination = new ThreadLocal<float[]>(() => new float[PeerCaches.Dimensions]);
            return new Subject(cache, key =>
            {
                if (!cache.TryGetValue(key, out float[]? v))
                {
                    v = PeerCaches.NewVector(key);
                    cache.Set(key, v, options);
                }

                v!.CopyTo(destination.Value!, 0);
            });
        });
        yield return ("ERCache Float32", () =>
        {
            var cache = PeerCaches.CreateERCache(Capacity);
            PeerCaches.Populate(cache, Capacity);
            var model = cache.GetModel("m");
            var destination = new ThreadLocal<float[]>(() => new float[PeerCaches.Dimensions]);
            return new Subject(cache, key =>
            {
                var pending = model.GetAsync(key, destination.Value!);
                if (!pending.IsCompletedSuccessfully)
                {
                    pending.AsTask().GetAwaiter().GetResult();
                }
            });
        });
    }

    private static double Measure(Action<long> operation, long[][] sequences, int threads)
    {
        // Warm-up on this thread first, so the timed part runs optimised code (tiered JIT), not first calls.
        foreach (long key in sequences[0].AsSpan(0, Math.Min(100_000, sequences[0].Length)))
        {
            operation(key);
        }

        using var ready = new Barrier(threads + 1);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            var keys = sequences[t];
            ready.SignalAndWait();
            foreach (long key in keys)
            {
                operation(key);
            }
        })).ToArray();
        foreach (var worker in workers)
        {
            worker.Start();
        }

        ready.SignalAndWait();
        var clock = Stopwatch.StartNew();
        foreach (var worker in workers)
        {
            worker.Join();
        }

        return threads * (double)sequences[0].Length / clock.Elapsed.TotalSeconds / 1e6;
    }

    /// <summary><paramref name="count"/> keys in <c>0..keys</c>, Zipf-distributed (rank 0 hottest), seeded.</summary>
    private static long[] Zipf(int keys, int count, int seed)
    {
        var cdf = new double[keys];
        double sum = 0;
        for (int k = 0; k < keys; k++)
        {
            sum += 1 / Math.Pow(k + 1, Skew);
            cdf[k] = sum;
        }

        var rng = new Random(seed);
        var draws = new long[count];
        for (int i = 0; i < count; i++)
        {
            int index = Array.BinarySearch(cdf, rng.NextDouble() * sum);
            draws[i] = index >= 0 ? index : Math.Min(~index, keys - 1);
        }

        return draws;
    }

    /// <summary>A cache under test: its operation and what to dispose.</summary>
    private sealed class Subject(IDisposable? owner, Action<long> operation) : IDisposable
    {
        public Action<long> Operation { get; } = operation;

        public void Dispose() => owner?.Dispose();
    }
}
