using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Metrics;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Internal;
using ERCache.Regional;
using ERCache.Tiers;

namespace ERCache.Models;

/// <summary>
/// The per-model policy registry: one <see cref="ModelVersionState"/> per configured model, found or created on each
/// reload. A reload is validated once and applied to all models or none: a model whose <c>Version</c> and
/// <c>Dimensions</c> stay keeps its state (tiers, scheduler, write fence) and only gets a new settings snapshot; a tier
/// whose storage settings change is rebuilt empty; a new version or dimension count gets a new, empty state, and the old
/// one is retired (released once its last request ends).
/// </summary>
/// <remarks>Snapshots are published model by model once every one of them has been built, so a request sees each
/// model's old settings or its new ones, never a mixture within one model; no request can observe a reload that was
/// rejected.</remarks>
internal sealed class ModelRegistry : IDisposable
{
    private readonly Lock _applyLock = new();
    private readonly Func<string, IEmbeddingInference?> _resolveInference;
    private readonly ERCacheOptionsValidator _validator;
    private readonly ERCacheMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly Microsoft.Extensions.Logging.ILogger _logger;
    private readonly InferenceDispatcher _dispatcher;
    private readonly RegionalTier? _regional;
    private readonly Random _sampling;
    private ModelDirectory _states = ModelDirectory.Empty;
    private bool _disposed; // under _applyLock

    public ModelRegistry(
        ERCacheOptions options,
        Func<string, IEmbeddingInference?> resolveInference,
        TimeProvider timeProvider,
        ERCacheMetrics metrics,
        ERCacheOptionsValidator validator,
        Microsoft.Extensions.Logging.ILogger logger,
        InferenceDispatcher dispatcher,
        RegionalTier? regional,
        Random sampling)
    {
        _sampling = sampling;
        _dispatcher = dispatcher;
        _regional = regional;
        _time = timeProvider;
        _logger = logger;
        _resolveInference = resolveInference;
        _validator = validator;
        _metrics = metrics;
        ApplyValidated(options); // the cache validated them
        metrics.ObserveTiers(() => ObserveTiers(t => t.Count), () => ObserveTiers(t => t.AllocatedBytes));
        metrics.ObserveSchedulers(ObserveInFlight, ObserveCircuits);
        metrics.ObserveResults(ObserveResults);
        metrics.ObserveRollouts(() => States.SelectMany(s => s.Warmer?.WarmShares() ?? []));
    }

    /// <summary>Every model version the registry holds: the current ones and the rollouts' next ones.</summary>
    public IEnumerable<ModelVersionState> AllVersions => States.SelectMany(s => s.Next is { } n ? new[] { s, n } : [s]);

    private ModelVersionState NewState(ModelPolicy policy, IEmbeddingInference inference, ResultCounts results, SlotGate? gate = null) =>
        new(policy, inference, results, _time, _metrics, _logger, _dispatcher, _regional, _sampling, gate);

    public IReadOnlyCollection<string> ModelNames => Volatile.Read(ref _states).Names;

    /// <summary>The current set of model versions; replaced by a new object only when a version is added, replaced or
    /// removed (model handles compare it, then read the state's current snapshot).</summary>
    public object Snapshot => Volatile.Read(ref _states);

    public bool TryGet(string model, [MaybeNullWhen(false)] out ModelVersionState state) =>
        Volatile.Read(ref _states).TryGet(model, out state);

    public IEnumerable<ModelVersionState> States => Volatile.Read(ref _states).States;

    /// <summary>Validates <paramref name="options"/> and applies it to every model; nothing changes if it is invalid, a
    /// model has no inference, or building a tier fails.</summary>
    public void Apply(ERCacheOptions options)
    {
        _validator.ThrowIfInvalid(options);
        ApplyValidated(options);
    }

    private void ApplyValidated(ERCacheOptions options)
    {
        lock (_applyLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var current = _states;
            var prepared = new List<(ModelVersionState State, ModelRuntime Runtime, bool IsNew)>();
            var rollouts = new List<(ModelVersionState State, ModelVersionState? Next)>();
            try
            {
                var missing = new List<string>();
                foreach (var (name, modelOptions) in options.Models)
                {
                    var policy = ModelPolicy.From(name, modelOptions);
                    current.TryGetByName(name, out var previous);
                    var inference = previous?.Inference ?? _resolveInference(name);
                    if (inference is null)
                    {
                        missing.Add(name);
                        continue;
                    }

                    // The version a rollout warmed becomes current with its tiers; any other new version starts empty.
                    var results = previous?.Results ?? new ResultCounts();
                    var warmed = previous?.Next is { } n && n.Serves(policy) ? n : null;
                    bool isNew = (previous is null || !previous.Serves(policy)) && warmed is null;
                    var state = isNew ? NewState(policy, inference, results, previous?.Scheduler.Gate) : warmed ?? previous!;
                    prepared.Add((state, state.Prepare(policy), isNew));

                    ModelVersionState? nextVersion = null;
                    if (policy.NextVersionPolicy is { } nextPolicy)
                    {
                        var kept = state.Next is { } k && k.Serves(nextPolicy) ? k : null;
                        nextVersion = kept ?? NewState(nextPolicy, inference, results, state.Scheduler.Gate); // one tower: one set of slots
                        prepared.Add((nextVersion, nextVersion.Prepare(nextPolicy), kept is null));
                    }

                    rollouts.Add((state, nextVersion));
                    if (policy.MaxConcurrency == 1 && (policy.DriftSampleRate > 0 || policy.RefreshAhead is not null)
                        && (previous is null || previous.Current.Policy.MaxConcurrency != 1 || !SameFreshness(previous.Current.Policy, policy)))
                    {
                        Log.FreshnessWithoutSpareSlot(_logger, name); // once per change, not on every reload
                    }
                }

                if (missing.Count > 0)
                {
                    throw new InvalidOperationException(
                        $"No inference is registered for model(s) {string.Join(", ", missing.Order(StringComparer.Ordinal).Select(m => $"'{m}'"))}: " +
                        "call AddModel(name, inference), register a keyed IEmbeddingInference with the model name as key, " +
                        "or pass the inference to EmbeddingCache.Create.");
                }
            }
            catch
            {
                foreach (var (state, runtime, isNew) in prepared)
                {
                    state.Discard(runtime);
                    if (isNew)
                    {
                        state.Scheduler.Dispose();
                    }
                }

                throw;
            }

            // Nothing can fail from here: publish every snapshot, then the set of states and the rollouts, then retire
            // every version (current or next) that is neither any more.
            foreach (var (state, runtime, _) in prepared)
            {
                state.Publish(runtime);
            }

            var next = new Dictionary<string, ModelVersionState>(StringComparer.OrdinalIgnoreCase);
            var live = new HashSet<ModelVersionState>(ReferenceEqualityComparer.Instance);
            var left = new List<ModelVersionState>();
            foreach (var (state, nextVersion) in rollouts)
            {
                next[state.Name] = state;
                live.Add(state);
                if (nextVersion is not null)
                {
                    live.Add(nextVersion);
                }

                if (state.SetNext(nextVersion) is { } replaced)
                {
                    left.Add(replaced);
                }
            }

            foreach (var old in current.States)
            {
                left.Add(old);
                if (old.Next is { } oldNext)
                {
                    left.Add(oldNext);
                }
            }

            if (next.Count != current.Count || next.Any(n => !current.TryGetByName(n.Key, out var kept) || !ReferenceEquals(kept, n.Value)))
            {
                Volatile.Write(ref _states, new ModelDirectory(next.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase)));
            }

            foreach (var old in left)
            {
                if (!live.Contains(old))
                {
                    old.SetNext(null); // a retired version warms nothing
                    old.Retire();
                }
            }
        }
    }

    /// <summary>Retires every model version: each is released (scheduler stopped, tiers released) once its last
    /// request ends. Called once no request runs any more.</summary>
    public void Dispose()
    {
        lock (_applyLock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (var state in _states.States)
            {
                state.Next?.Retire();
                state.SetNext(null);
                state.Retire();
            }
        }
    }

    private IEnumerable<Measurement<int>> ObserveInFlight() =>
        States.Select(s => new Measurement<int>(s.Scheduler.InFlight, ERCacheMetrics.ModelTags(s.Name)));

    private IEnumerable<Measurement<int>> ObserveCircuits() =>
        States.Where(s => s.Scheduler.BreakerState is not null)
            .Select(s => new Measurement<int>((int)s.Scheduler.BreakerState!.Value, ERCacheMetrics.ModelTags(s.Name)));

    /// <summary>The requests counter: each model's results so far by source, for the sources that served any.</summary>
    private IEnumerable<Measurement<long>> ObserveResults()
    {
        foreach (var state in States)
        {
            for (int source = 0; source < ResultCounts.Sources; source++)
            {
                long count = state.Results.Of((EmbeddingSource)source);
                if (count > 0)
                {
                    yield return new Measurement<long>(count, ERCacheMetrics.ResultTags(state.Name, (EmbeddingSource)source));
                }
            }
        }
    }

    private IEnumerable<Measurement<long>> ObserveTiers(Func<EmbeddingTier, long> measure)
    {
        foreach (var state in States)
        {
            var runtime = state.Current;
            foreach (var tier in new[] { runtime.Direct, runtime.Failover })
            {
                if (tier is not null)
                {
                    yield return new Measurement<long>(measure(tier), ERCacheMetrics.TierTags(runtime.Policy.Name, tier.Policy.Kind));
                }
            }
        }
    }

    private static bool SameFreshness(ModelPolicy a, ModelPolicy b) =>
        a.DriftSampleRate == b.DriftSampleRate && a.RefreshAhead == b.RefreshAhead;
}
