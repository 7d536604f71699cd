using System.Runtime.ExceptionServices;
using System.Text.Json;
using ERCache.Inference;
using ERCache.Regional;
using ERCache.Replay.Traces;

namespace ERCache.Replay.Replay;

/// <summary>
/// Replaying users on several threads: whether it gives the one-thread answer, a shard's share of each tier, and
/// running the shards.
/// </summary>
internal static class Shards
{
    /// <summary>Null when users cannot affect one another (no tier can fill); otherwise the reason, naming the tier.</summary>
    public static string? WhyUsersInteract(ERCacheOptions options, string[] names, IReadOnlyList<IReadOnlySet<long>> users)
    {
        // The tiers as the library sizes them (MaxBytes may lower a capacity): build them once and ask.
        var none = options.Models.Keys.ToDictionary(k => k, k => (IEmbeddingInference)new ReplayInference(new SimulationClock(), k, new ModelReport(), new TimeSeries(1)));
        using var probe = EmbeddingCache.Create(options, none);
        for (int m = 0; m < names.Length; m++)
        {
            foreach (var kind in (ReadOnlySpan<TierKind>)[TierKind.Direct, TierKind.Failover])
            {
                if (probe.GetTierStatistics(names[m], kind) is { } tier && tier.Capacity < users[m].Count)
                {
                    return $"the {kind} tier of '{names[m]}' holds {tier.Capacity:N0} of {users[m].Count:N0} users, so eviction makes users depend on one another";
                }
            }
        }

        return null;
    }

    /// <summary>
    /// One replay per shard. A shard's caches are built from a copy of the options with, for every tier, the shard's
    /// users of the model plus its proportional share of the slack as capacity, so the shards' capacities add up to
    /// the configured one. The given options are not changed.
    /// </summary>
    public static ShardReplay[] Create(
        string[] names, ERCacheOptions options, IReadOnlyList<IReadOnlySet<long>> users, int shards, int hosts, IRegionalStore? regional, DriftingEmbedding? drift = null,
        ReplayTimeline? timeline = null)
    {
        // The users a deletion event may pick from: each shard its own.
        bool deletes = timeline?.Events.Any(e => e.Kind == ReplayEventKind.Delete) == true;
        var everyone = deletes ? users.SelectMany(u => u).ToHashSet() : [];
        IReadOnlySet<long> DeletableIn(int shard) => shards == 1 ? everyone : everyone.Where(u => ShardOf(u, shards) == shard).ToHashSet();
        if (shards == 1)
        {
            return [new ShardReplay(names, options, hosts, regional, drift, timeline, everyone)];
        }

        // Users of each configured model per shard, counted in one pass (a model absent from the trace has none).
        var perShard = options.Models.ToDictionary(p => p.Key, p =>
        {
            var counts = new long[shards];
            int m = Array.FindIndex(names, n => string.Equals(n, p.Key, StringComparison.OrdinalIgnoreCase));
            foreach (long user in m < 0 ? Enumerable.Empty<long>() : users[m])
            {
                counts[ShardOf(user, shards)]++;
            }

            return counts;
        });
        var replays = new ShardReplay[shards];
        for (int s = 0; s < shards; s++)
        {
            var mine = Copy(options);
            foreach (var (name, model) in mine.Models)
            {
                long all = perShard[name].Sum();
                model.Direct.Capacity = Share(model.Direct.Capacity, all, perShard[name][s], s, shards);
                model.Failover.Capacity = Share(model.Failover.Capacity, all, perShard[name][s], s, shards);
            }

            replays[s] = new ShardReplay(names, mine, hosts, regional, drift, timeline, DeletableIn(s)); // users of different shards never share a store key
        }

        return replays;
    }

    /// <summary>A deep copy of <paramref name="options"/>' models (model names still compared in any case), sharing its regional and snapshot settings.</summary>
    public static ERCacheOptions Copy(ERCacheOptions options)
    {
        var copy = new ERCacheOptions { Regional = options.Regional, Snapshots = options.Snapshots }; // never changed by the replay
        foreach (var (name, model) in options.Models)
        {
            copy.Models[name] = JsonSerializer.Deserialize<ModelOptions>(JsonSerializer.SerializeToUtf8Bytes(model))!;
        }

        return copy;
    }

    /// <summary>A shard's capacity: its users, plus its share of the slack (a model absent from the trace splits evenly).</summary>
    private static int Share(int capacity, long all, long mine, int shard, int shards)
    {
        long share = all == 0
            ? (capacity / shards) + (shard == shards - 1 ? capacity % shards : 0)
            : mine + ((capacity - all) * mine / all);
        return (int)Math.Max(1, share);
    }

    public static void Run(ShardReplay[] replays, TraceRequest[] requests, int[]? randomHosts, Action<double>? progress = null)
    {
        if (replays.Length == 1)
        {
            replays[0].Replay(requests, 0, 1, randomHosts, progress);
            return;
        }

        var failures = new ExceptionDispatchInfo?[replays.Length];
        var workers = new Thread[replays.Length - 1];
        for (int s = 1; s < replays.Length; s++)
        {
            int shard = s;
            workers[s - 1] = new Thread(() => failures[shard] = Capture(() => replays[shard].Replay(requests, shard, replays.Length, randomHosts)))
            {
                IsBackground = true,
                Name = $"replay shard {s}",
            };
            workers[s - 1].Start();
        }

        failures[0] = Capture(() => replays[0].Replay(requests, 0, replays.Length, randomHosts, progress)); // shard 0's pace stands for all
        foreach (var worker in workers)
        {
            worker.Join();
        }

        failures.FirstOrDefault(f => f is not null)?.Throw();
    }

    private static ExceptionDispatchInfo? Capture(Action action)
    {
        try
        {
            action();
            return null;
        }
        catch (Exception ex)
        {
            return ExceptionDispatchInfo.Capture(ex);
        }
    }

    public static int StickyHost(long user, int hosts) => (int)(((ulong)user * 0x9E3779B97F4A7C15UL >> 32) % (ulong)hosts);

    /// <summary>A user's shard: a different mix from <see cref="StickyHost"/>, so shards do not line up with hosts.</summary>
    public static int ShardOf(long user, int shards) => (int)(((ulong)user * 0xD6E8FEB86659FD93UL >> 33) % (ulong)shards);
}
