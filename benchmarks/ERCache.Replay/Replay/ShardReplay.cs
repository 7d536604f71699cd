using Microsoft.Extensions.Time.Testing;
using ERCache.Inference;
using ERCache.Testing;
using ERCache.Regional;
using ERCache.Replay.Traces;

namespace ERCache.Replay.Replay;

/// <summary>One shard's replay: its own clock, delegates, caches (one per host) and reports.</summary>
internal sealed class ShardReplay : IDisposable
{
    private readonly FakeTimeProvider _clock = new();
    private readonly DateTimeOffset _start;
    private readonly EmbeddingCache[] _caches;
    private readonly ModelReport[] _reports;
    private readonly RequestWindow[,] _windows;
    private readonly ReplayRegionalStore? _regional;
    private readonly HashSet<long> _usersNow = []; // users requested at the current timestamp, when hosts share a store

    public ShardReplay(string[] names, ERCacheOptions options, int hosts, IRegionalStore? regional = null, DriftingEmbedding? drift = null)
    {
        _regional = regional is null ? null : new ReplayRegionalStore(regional);
        _start = _clock.GetUtcNow();
        var inference = names.Select(_ => new ReplayInference(_clock, _start, drift)).ToArray();
        var byName = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => (IEmbeddingInference)inference[p.i], StringComparer.OrdinalIgnoreCase);
        foreach (var configured in options.Models.Keys.Where(k => !byName.ContainsKey(k)))
        {
            byName[configured] = new ReplayInference(_clock, _start, drift); // configured but absent from the trace
        }

        // Request-path calls run inline (RunInline); background calls (refresh ahead) wait here until their window runs them.
        var background = new ManualInferenceDispatcher();
        _caches = Enumerable.Range(0, hosts).Select(_ => EmbeddingCache.Create(options, byName, new EmbeddingCacheServices { TimeProvider = _clock, Dispatcher = background, RegionalStore = _regional })).ToArray();
        _reports = names.Select(_ => new ModelReport()).ToArray();
        _windows = new RequestWindow[hosts, names.Length];
        for (int h = 0; h < hosts; h++)
        {
            for (int m = 0; m < names.Length; m++)
            {
                _windows[h, m] = new RequestWindow(_caches[h], names[m], _caches[h].GetPolicy(names[m]), inference[m], _reports[m], background);
            }
        }
    }

    /// <summary>Replays the requests of the users of <paramref name="shard"/>, in trace order.</summary>
    public void Replay(TraceRequest[] requests, int shard, int shards, int[]? randomHosts)
    {
        int hosts = _caches.Length;
        var open = new List<RequestWindow>();
        long currentTs = long.MinValue;
        for (int i = 0; i < requests.Length; i++)
        {
            var request = requests[i];
            if (shards > 1 && Shards.ShardOf(request.User, shards) != shard)
            {
                continue;
            }

            if (request.TimestampMs != currentTs)
            {
                FlushAll(open);
                Publish();
                currentTs = request.TimestampMs;
                _clock.SetUtcNow(_start.AddMilliseconds(currentTs));
                _usersNow.Add(request.User);
            }
            else if (_regional is not null && !_usersNow.Add(request.User))
            {
                // A user again at the same instant, maybe on another host: what the first request computed must be
                // visible to it, as on one host where it would be a direct hit.
                FlushAll(open);
                Publish();
                _usersNow.Add(request.User);
            }

            int host = hosts == 1 ? 0 : randomHosts is not null ? randomHosts[i] : Shards.StickyHost(request.User, hosts);
            var window = _windows[host, request.Model];
            if (window.Contains(request.User) || window.IsFull)
            {
                window.Flush();
            }

            if (window.Count == 0)
            {
                open.Add(window);
            }

            window.Add(request.User, request.Fail);
        }

        FlushAll(open);
    }

    /// <summary>What this shard's hosts sent to and read from the regional store, or null without one.</summary>
    public RegionalTraffic? Traffic => _regional?.Traffic;

    /// <summary>The shard's report of model <paramref name="m"/>, with its tiers' peaks summed over hosts.</summary>
    public ModelReport Finish(int m)
    {
        for (int h = 0; h < _caches.Length; h++)
        {
            _windows[h, m].ObserveTiers();
            _reports[m].Direct.Add(_windows[h, m].DirectPeak); // tiers of different hosts hold different entries: sum
            _reports[m].Failover.Add(_windows[h, m].FailoverPeak);
        }

        return _reports[m];
    }

    public void Dispose()
    {
        foreach (var cache in _caches)
        {
            cache.Dispose();
        }
    }

    /// <summary>Makes what the hosts computed visible to all of them: each cache's queued regional writes, then the held
    /// writes, in one commit. Nothing happens without a regional store.</summary>
    private void Publish()
    {
        if (_regional is null)
        {
            return;
        }

        foreach (var cache in _caches)
        {
            cache.FlushRegionalWritesAsync().GetAwaiter().GetResult();
        }

        _regional.Commit();
        _usersNow.Clear();
    }

    private static void FlushAll(List<RequestWindow> open)
    {
        foreach (var window in open)
        {
            window.Flush();
        }

        open.Clear();
    }
}
