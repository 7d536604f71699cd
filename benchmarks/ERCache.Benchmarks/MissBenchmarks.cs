using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Caching.Memory;
using ZiggyCreatures.Caching.Fusion;

namespace ERCache.Benchmarks;

/// <summary>
/// A single-user miss with an instant, synchronous factory (ERCache: an inline inference), into stores bounded at
/// 10,000 entries that are full, so every miss also evicts: each peer's get-or-add of a new key, plus the copy into the
/// caller's buffer. ERCache runs lean (direct tier only, RunInline), lean without its circuit breaker, and with default
/// options (failover tier on, inference on the dispatcher), beside TLru run through the same thread hop, and with default
/// options again, each miss followed by a pause (an isolated miss). Each invocation misses on 256 new keys. For the batch
/// target: 64 misses per <c>GetManyAsync</c> (lean), against the one direct-tier write each of them makes, measured alone.
/// </summary>
[MemoryDiagnoser]
public class MissBenchmarks
{
    private const int Dimensions = PeerCaches.Dimensions;
    private const int Capacity = 10_000;
    private const int Misses = 256;
    private const int PauseMicroseconds = 8;
    private readonly float[] _destination = new float[Dimensions];
    private PeerCaches _peers = null!;
    private EmbeddingCache _lean = null!;
    private EmbeddingCache _leanNoBreaker = null!;
    private EmbeddingCache _defaults = null!;
    private EmbeddingCache _leanBatch = null!;
    private EmbeddingCache _writesOnly = null!;
    private readonly long[] _batchUsers = new long[64];
    private readonly float[] _batchVectors = new float[64 * Dimensions];
    private readonly EmbeddingResult[] _batchResults = new EmbeddingResult[64];
    private readonly float[] _vector = PeerCaches.NewVector(7);
    private MemoryCacheEntryOptions _memoryOptions = null!;
    private HopThread _hop = null!;
    private Func<long, float> _getOrAddAndCopy = null!;
    private long _next;

    [GlobalSetup]
    public void Setup()
    {
        _peers = new PeerCaches(Capacity);
        _peers.Populate(Capacity);
        _lean = PeerCaches.CreateERCache(Capacity);
        PeerCaches.Populate(_lean, Capacity);
        _leanNoBreaker = PeerCaches.CreateERCache(Capacity, breaker: false);
        PeerCaches.Populate(_leanNoBreaker, Capacity);
        _defaults = PeerCaches.CreateERCache(Capacity, defaults: true);
        PeerCaches.Populate(_defaults, Capacity);
        _leanBatch = PeerCaches.CreateERCache(Capacity);
        PeerCaches.Populate(_leanBatch, Capacity);
        _writesOnly = PeerCaches.CreateERCache(Capacity);
        PeerCaches.Populate(_writesOnly, Capacity);
        _memoryOptions = new MemoryCacheEntryOptions { Size = 1 };
        _hop = new HopThread();
        _getOrAddAndCopy = user =>
        {
            _peers.TLru.GetOrAdd(user, PeerCaches.NewVector).CopyTo(_destination, 0);
            return _destination[0];
        };
        _next = 1L << 32; // never a key the setup wrote
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _lean.Dispose();
        _leanNoBreaker.Dispose();
        _defaults.Dispose();
        _leanBatch.Dispose();
        _writesOnly.Dispose();
        _hop.Dispose();
        _peers.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Misses)]
    public float BitFasterConcurrentTLruGetOrAdd()
    {
        for (int i = 0; i < Misses; i++)
        {
            _peers.TLru.GetOrAdd(_next++, PeerCaches.NewVector).CopyTo(_destination, 0);
        }

        return _destination[0];
    }

    /// <summary>The baseline of <see cref="ERCacheDefaults"/>: TLru's get-or-add and the copy, run on another thread the
    /// way ERCache's default dispatcher runs a miss's inference (<see cref="HopThread"/>), the caller blocked until it is
    /// answered. Both pay the same crossing between cores, whose cost depends on where the machine's host placed its
    /// virtual CPUs (<c>--core-to-core</c>).</summary>
    [Benchmark(OperationsPerInvoke = Misses)]
    public float BitFasterConcurrentTLruGetOrAddOnAnotherThread()
    {
        for (int i = 0; i < Misses; i++)
        {
            _hop.Invoke(_getOrAddAndCopy, _next++);
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Misses)]
    public float MemoryCacheGetOrCreate()
    {
        for (int i = 0; i < Misses; i++)
        {
            long user = _next++;
            var vector = _peers.MemoryCache.GetOrCreate(user, entry =>
            {
                entry.Size = 1;
                return PeerCaches.NewVector((long)entry.Key);
            }, _memoryOptions);
            vector!.CopyTo(_destination, 0);
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Misses)]
    public float FusionCacheGetOrSet()
    {
        for (int i = 0; i < Misses; i++)
        {
            long user = _next++;
            _peers.Fusion.GetOrSet<float[]>(PeerCaches.Key(user), (_, _) => PeerCaches.NewVector(user)).CopyTo(_destination, 0);
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Misses)]
    public float HybridCacheGetOrCreate()
    {
        for (int i = 0; i < Misses; i++)
        {
            long user = _next++;
            _peers.Hybrid.GetOrCreateAsync(PeerCaches.Key(user), user, static (u, _) => ValueTask.FromResult(PeerCaches.NewVector(u)))
                .AsTask().GetAwaiter().GetResult().CopyTo(_destination, 0);
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Misses)]
    public float ERCacheLean() => Miss(_lean);

    [Benchmark(OperationsPerInvoke = Misses)]
    public float ERCacheDefaults() => Miss(_defaults);

    /// <summary>A miss with default options that does not follow the last one at once: each is followed by a pause of
    /// <see cref="PauseMicroseconds"/> µs on the caller's thread (a busy wait, shorter than the dispatcher thread's
    /// watch, so no thread blocks), as a request's miss among its other work would be. Minus <see cref="PauseOnly"/>,
    /// what one isolated miss costs its caller: the previous call's bookkeeping is over before it starts.</summary>
    [Benchmark(OperationsPerInvoke = Misses)]
    public float ERCacheDefaultsPaced() => Miss(_defaults, paced: true);

    /// <summary>The pauses of <see cref="ERCacheDefaultsPaced"/> alone, to subtract from it.</summary>
    [Benchmark(OperationsPerInvoke = Misses)]
    public float PauseOnly()
    {
        for (int i = 0; i < Misses; i++)
        {
            Pause();
        }

        return _destination[0];
    }

    /// <summary>Lean without the circuit breaker (<c>Inference:CircuitBreaker:Enabled</c> false): what the breaker costs
    /// a miss.</summary>
    [Benchmark(OperationsPerInvoke = Misses)]
    public float ERCacheLeanNoBreaker() => Miss(_leanNoBreaker);

    /// <summary>Four <c>GetManyAsync</c> calls of 64 new users each, lean (direct tier only, inline inference).</summary>
    [Benchmark(OperationsPerInvoke = Misses)]
    public float ERCacheLeanBatchOf64()
    {
        for (int call = 0; call < Misses / 64; call++)
        {
            for (int i = 0; i < 64; i++)
            {
                _batchUsers[i] = _next++;
            }

            var pending = _leanBatch.GetManyAsync("m", _batchUsers, _batchVectors, _batchResults);
            if (!pending.IsCompletedSuccessfully || _batchResults[63].Source != EmbeddingSource.Fresh)
            {
                throw new InvalidOperationException("expected 64 fresh vectors, completed inline");
            }
        }

        return _batchVectors[0];
    }

    /// <summary>What each of those misses must cost at least: one write of a new key into the full direct tier (it
    /// evicts), alone.</summary>
    [Benchmark(OperationsPerInvoke = Misses)]
    public float DirectTierWriteOnly()
    {
        var tier = _writesOnly.GetTier("m", TierKind.Direct)!;
        for (int i = 0; i < Misses; i++)
        {
            tier.Write(_next++, _vector, writtenAt: 0);
        }

        return _vector[0];
    }

    private float Miss(EmbeddingCache cache, bool paced = false)
    {
        var destination = _destination.AsMemory();
        for (int i = 0; i < Misses; i++)
        {
            // As an await would: the result of a miss that completed synchronously is read without making a task.
            var pending = cache.GetAsync("m", _next++, destination);
            var result = pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();
            if (result.Source != EmbeddingSource.Fresh)
            {
                throw new InvalidOperationException($"expected a fresh vector, got {result.Source}");
            }

            if (paced)
            {
                Pause();
            }
        }

        return _destination[0];
    }

    private static void Pause()
    {
        long until = Stopwatch.GetTimestamp() + PauseMicroseconds * Stopwatch.Frequency / 1_000_000;
        while (Stopwatch.GetTimestamp() < until)
        {
        }
    }
}
