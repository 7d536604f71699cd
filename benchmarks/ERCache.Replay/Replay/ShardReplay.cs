using ERCache.Inference;
using ERCache.Regional;
using ERCache.Replay.Traces;

namespace ERCache.Replay.Replay;

/// <summary>
/// One shard's replay: a discrete-event simulation of its hosts on a clock of its own. Requests arrive at their
/// timestamps; each host's towers (one per model) take the time their cost says, and the library's own scheduler
/// queues, batches, sheds and times out on the replay's clock; the timeline's events happen at their times.
/// </summary>
internal sealed class ShardReplay : IDisposable
{
    private readonly SimulationClock _clock = new();
    private readonly ReplayDispatcher _dispatcher = new();
    private readonly string[] _names;
    private readonly EmbeddingCache[] _caches;
    private readonly ReplayOptionsMonitor[] _monitors;
    private readonly ReplayInference[,] _towers;
    private readonly ModelReport[] _reports;
    private readonly TimeSeries[] _series;
    private readonly TimeSeries[] _hostSeries;
    private readonly RequestWindow[,] _windows;
    private readonly ReplayRegionalStore? _regional;
    private readonly HashSet<long> _usersNow = []; // users requested at the current timestamp, when hosts share a store
    private readonly Action _pump;
    private readonly TimeSpan? _warmAhead;
    private readonly string? _snapshotRoot;
    private readonly int? _warmConcurrency;
    private readonly TimeSpan? _switchOver;
    private readonly Func<string, IEmbeddingInference?>[] _resolve;

    public ShardReplay(
        string[] names, ERCacheOptions options, int hosts, IRegionalStore? regional = null, DriftingEmbedding? drift = null, ReplayTimeline? timeline = null,
        IReadOnlySet<long>? deletable = null)
    {
        timeline ??= ReplayTimeline.Unbounded;
        _names = names;
        _warmAhead = timeline.WarmAhead;
        _warmConcurrency = timeline.WarmConcurrency;
        _switchOver = timeline.SwitchOver;
        _pump = _dispatcher.RunAll;
        _regional = regional is null ? null : new ReplayRegionalStore(regional);
        _reports = names.Select(_ => new ModelReport()).ToArray();
        long windowMs = Math.Max(1, (long)timeline.Window.TotalMilliseconds);
        _series = names.Select(_ => new TimeSeries(windowMs)).ToArray();
        _hostSeries = Enumerable.Range(0, hosts).Select(_ => new TimeSeries(windowMs)).ToArray();
        Deletions = new DeletionLog(timeline.Events.Count);

        // Each host has its own towers; a model configured but absent from the trace gets one that is never called.
        _towers = new ReplayInference[hosts, names.Length];
        _resolve = new Func<string, IEmbeddingInference?>[hosts];
        for (int h = 0; h < hosts; h++)
        {
            var byName = new Dictionary<string, IEmbeddingInference>(StringComparer.OrdinalIgnoreCase);
            for (int m = 0; m < names.Length; m++)
            {
                byName[names[m]] = _towers[h, m] = new ReplayInference(_clock, names[m], _reports[m], _series[m], drift, timeline.TowerOf(names[m]), _hostSeries[h]);
            }

            foreach (string configured in options.Models.Keys.Where(k => !byName.ContainsKey(k)))
            {
                byName[configured] = new ReplayInference(_clock, configured, new ModelReport(), new TimeSeries(windowMs), drift);
            }

            _resolve[h] = name => byName.GetValueOrDefault(name);
        }

        // With snapshots, each host keeps its own directory (a host's local disk), removed when the replay ends.
        _snapshotRoot = timeline.Snapshots ? Path.Combine(Path.GetTempPath(), $"ercache-replay-snapshots-{Guid.NewGuid():N}") : null;
        _monitors = Enumerable.Range(0, hosts).Select(h => new ReplayOptionsMonitor(WithSnapshots(options, h))).ToArray();
        _caches = Enumerable.Range(0, hosts).Select(StartHost).ToArray();
        _windows = new RequestWindow[hosts, names.Length];
        for (int h = 0; h < hosts; h++)
        {
            for (int m = 0; m < names.Length; m++)
            {
                _windows[h, m] = new RequestWindow(
                    _caches[h], names[m], _caches[h].GetPolicy(names[m]), _towers[h, m], _reports[m], _series[m], _hostSeries[h], Deletions, _clock, timeline.HasCapacity, _pump);
            }
        }

        for (int e = 0; e < timeline.Events.Count; e++)
        {
            Schedule(timeline.Events[e], e, deletable ?? new HashSet<long>());
        }
    }

    /// <summary>Requests answered with a vector written before their user's deletion, per event.</summary>
    public DeletionLog Deletions { get; }

    /// <summary>Replays the requests of the users of <paramref name="shard"/>, in trace order, then lets every request
    /// still waiting for its tower finish; <paramref name="progress"/> hears the share of the trace passed now and then.</summary>
    public void Replay(TraceRequest[] requests, int shard, int shards, int[]? randomHosts, Action<double>? progress = null)
    {
        // The library's continuations run inline on this thread only without a synchronization context (a test
        // runner's would send them to the thread pool, and the simulation would no longer be one thread).
        var context = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(null);
        try
        {
            ReplayRequests(requests, shard, shards, randomHosts, progress);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(context);
        }
    }

    private void ReplayRequests(TraceRequest[] requests, int shard, int shards, int[]? randomHosts, Action<double>? progress)
    {
        int hosts = _caches.Length;
        var open = new List<RequestWindow>();
        long currentTs = long.MinValue;
        for (int i = 0; i < requests.Length; i++)
        {
            if ((i & 0xFFFF) == 0)
            {
                progress?.Invoke((double)i / requests.Length); // one call per 65,536 requests
            }

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
                _clock.RunUntil(currentTs * TimeSpan.TicksPerMillisecond, _pump); // tower calls, timers and events due by then
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
        long settled = _clock.Now + TimeSpan.FromHours(1).Ticks; // every call ends or is abandoned long before: bounded, never a hang
        while (Outstanding > 0 && _clock.TryRunNext(settled))
        {
            _pump();
            Publish();
        }

        if (Outstanding > 0)
        {
            throw new InvalidOperationException($"{Outstanding} request group(s) were never answered: the library left the replay's thread or its clock.");
        }
    }

    /// <summary>What this shard's hosts sent to and read from the regional store, or null without one.</summary>
    public RegionalTraffic? Traffic => _regional?.Traffic;

    /// <summary>The shard's time series of model <paramref name="m"/>.</summary>
    public TimeSeries Series(int m) => _series[m];

    /// <summary>The shard's time series of host <paramref name="h"/>, every model added together.</summary>
    public TimeSeries HostSeries(int h) => _hostSeries[h];

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

        if (_snapshotRoot is not null && Directory.Exists(_snapshotRoot))
        {
            Directory.Delete(_snapshotRoot, recursive: true);
        }
    }

    /// <summary>The options of host <paramref name="host"/>: with snapshots, its own snapshot directory.</summary>
    private ERCacheOptions WithSnapshots(ERCacheOptions options, int host)
    {
        if (_snapshotRoot is null)
        {
            return options;
        }

        var mine = Shards.Copy(options);
        mine.Snapshots = new SnapshotOptions { Directory = Path.Combine(_snapshotRoot, $"host{host}") };
        return mine;
    }

    private int Outstanding
    {
        get
        {
            int outstanding = 0;
            foreach (var window in _windows)
            {
                outstanding += window.Outstanding;
            }

            return outstanding;
        }
    }

    private EmbeddingCache StartHost(int host) =>
        new(_monitors[host], _resolve[host], new EmbeddingCacheServices { TimeProvider = _clock, Dispatcher = _dispatcher, RegionalStore = _regional });

    /// <summary>Puts <paramref name="e"/> on the clock: a rolled version change once per host, at even steps of its span.</summary>
    private void Schedule(ReplayEvent e, int index, IReadOnlySet<long> deletable)
    {
        long at = e.AtMs * TimeSpan.TicksPerMillisecond;
        int hosts = _caches.Length;
        switch (e.Kind)
        {
            case ReplayEventKind.Version:
                _ = ModelsOf(e).ToArray(); // a model the trace does not use is refused now, not ignored
                for (int h = 0; h < hosts; h++)
                {
                    int host = h;
                    long switchAt = at + (e.Span.Ticks * h / hosts);
                    if (_warmAhead is not null || _switchOver is not null)
                    {
                        // The rollout is named W before the switch (at it without warming); a gradual switch starts at
                        // the event and the version changes once every user has switched.
                        long ahead = (_warmAhead ?? TimeSpan.Zero).Ticks;
                        _clock.Schedule(switchAt - ahead, () => StartRollout(host, e.Model, TimeSpan.FromTicks(ahead)));
                    }

                    _clock.Schedule(switchAt + (_switchOver ?? TimeSpan.Zero).Ticks, () => ChangeVersion(host, e.Model));
                }

                break;
            case ReplayEventKind.Restart:
                if (e.Host >= hosts)
                {
                    throw new ArgumentException($"Event '{e.Text}' restarts host {e.Host}, but the replay has {hosts} host(s) (0..{hosts - 1}).");
                }

                _clock.Schedule(at, () => Restart(e.Host));
                break;
            case ReplayEventKind.Delete:
                _clock.Schedule(at, () => Delete(deletable.Where(u => IsDeleted(u, e.Share)).Order().ToArray(), e.AtMs, index));
                break;
            default:
                foreach (int m in ModelsOf(e))
                {
                    for (int h = 0; h < hosts; h++)
                    {
                        _towers[h, m].AddOutage(e.AtMs, e.AtMs + (long)e.Span.TotalMilliseconds);
                    }
                }

                break;
        }
    }

    /// <summary>Whether a deletion of <paramref name="share"/> of the users takes <paramref name="user"/>: a hash of
    /// the id, so every shard and every run picks the same users.</summary>
    internal static bool IsDeleted(long user, double share) =>
        ((ulong)user * 0xBF58476D1CE4E5B9UL >> 11) * (1.0 / (1UL << 53)) < share;

    private IEnumerable<int> ModelsOf(ReplayEvent e)
    {
        if (e.Model is null)
        {
            return Enumerable.Range(0, _names.Length);
        }

        int m = Array.FindIndex(_names, n => string.Equals(n, e.Model, StringComparison.OrdinalIgnoreCase));
        return m >= 0 ? [m] : throw new ArgumentException($"Event '{e.Text}' names model '{e.Model}', which the trace does not use (it uses: {string.Join(", ", _names)}).");
    }

    /// <summary>The host's configuration with a new <c>Version</c> for the event's models (the one a rollout warmed, if
    /// any), applied as a reload.</summary>
    private void ChangeVersion(int host, string? model) => Reload(host, model, options =>
    {
        options.Version = NextVersion(options.Version);
        options.Rollout = new RolloutOptions();
    });

    /// <summary>The host's configuration naming the next version as <c>Rollout:NextVersion</c>: it is warmed from now on.</summary>
    private void StartRollout(int host, string? model, TimeSpan untilSwitch) => Reload(host, model, options =>
        options.Rollout = new RolloutOptions
        {
            NextVersion = NextVersion(options.Version),
            MaxConcurrency = _warmConcurrency,
            SwitchAt = _switchOver is null ? null : _clock.GetUtcNow() + untilSwitch,
            SwitchOver = _switchOver ?? TimeSpan.Zero,
        });

    private static string NextVersion(string version) => $"{version}+1";

    private void Reload(int host, string? model, Action<ModelOptions> change)
    {
        var next = Shards.Copy(_monitors[host].CurrentValue);
        foreach (var (name, options) in next.Models)
        {
            if (model is null || string.Equals(name, model, StringComparison.OrdinalIgnoreCase))
            {
                change(options);
            }
        }

        _monitors[host].Set(next);
    }

    /// <summary>The host's process stops and starts again on the same configuration: its local tiers are gone, and
    /// requests it had in flight are answered by the stopping cache (as errors, from failover or as fallbacks).</summary>
    private void Restart(int host)
    {
        if (_snapshotRoot is not null)
        {
            // The graceful stop writes the snapshot; requests still in flight on the stopping host would delay the
            // library's own write at release until the clock moves, so the replay writes it first, off this thread.
            _caches[host].WriteSnapshotsAsync().GetAwaiter().GetResult();
        }

        _caches[host].Dispose();
        _pump();
        _caches[host] = StartHost(host);
        if (_snapshotRoot is not null)
        {
            // The load runs in the background in a real process; here it completes before trace time moves on (a few
            // hundred milliseconds of a host's start-up: see docs/benchmarks.md for the load time).
            _caches[host].WhenReadyAsync().GetAwaiter().GetResult();
        }

        for (int m = 0; m < _names.Length; m++)
        {
            _windows[host, m].Cache = _caches[host];
        }
    }

    /// <summary>A region-wide deletion as the library offers it today: <c>RemoveAsync(user)</c> on one host (host 0),
    /// which clears that host's tiers and the regional store; other hosts keep what they hold.</summary>
    private void Delete(long[] users, long atMs, int eventIndex)
    {
        Publish(); // what was computed before the deletion reaches the store first, as it would have by now
        foreach (long user in users)
        {
            var removal = _caches[0].RemoveAsync(user);
            if (!removal.IsCompleted)
            {
                throw new InvalidOperationException("A removal waited on something the replay's clock does not run.");
            }

            removal.GetAwaiter().GetResult();
            Deletions.Deleted(user, atMs, eventIndex);
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
