using Microsoft.Extensions.Time.Testing;
using ERCache.Inference;
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

    public ShardReplay(string[] names, ERCacheOptions options, int hosts)
    {
        _start = _clock.GetUtcNow();
        var inference = names.Select(_ => new ReplayInference(_clock, _start)).ToArray();
        var byName = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => (IEmbeddingInference)inference[p.i], StringComparer.OrdinalIgnoreCase);
        foreach (var configured in options.Models.Keys.Where(k => !byName.ContainsKey(k)))
        {
            byName[configured] = new ReplayInference(_clock, _start); // configured but absent from the trace
        }

        _caches = Enumerable.Range(0, hosts).Select(_ => EmbeddingCache.Create(options, byName, _clock)).ToArray();
        _reports = names.Select(_ => new ModelReport()).ToArray();
        _windows = new RequestWindow[hosts, names.Length];
        for (int h = 0; h < hosts; h++)
        {
            for (int m = 0; m < names.Length; m++)
            {
                _windows[h, m] = new RequestWindow(_caches[h], names[m], _caches[h].GetPolicy(names[m]), inference[m], _reports[m]);
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
                currentTs = request.TimestampMs;
                _clock.SetUtcNow(_start.AddMilliseconds(currentTs));
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

    private static void FlushAll(List<RequestWindow> open)
    {
        foreach (var window in open)
        {
            window.Flush();
        }

        open.Clear();
    }
}
