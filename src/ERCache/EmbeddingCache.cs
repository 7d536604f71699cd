using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Internal;
using ERCache.Models;
using ERCache.Regional;
using ERCache.Tiers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace ERCache;

/// <summary>
/// The embedding cache: checks its arguments, finds the model's runtime, and lets the runtime answer the request
/// (direct tier, then inference, then failover tier, then fallback; the rules themselves live in one place, the
/// model runtime). Also follows configuration reloads.
/// </summary>
/// <remarks>
/// For a request for model <c>m</c> and user <c>u</c> at time <c>now</c>:
/// <list type="number">
/// <item>a direct-tier entry younger than the direct TTL is returned and no inference runs;</item>
/// <item>otherwise inference runs (batched); a valid vector (right length, all finite) is written, stamped
/// <c>now</c>, to both tiers and returned as <see cref="EmbeddingSource.Fresh"/>;</item>
/// <item>when inference fails, a failover-tier entry younger than the failover TTL is returned as
/// <see cref="EmbeddingSource.Failover"/> (and never copied into the direct tier);</item>
/// <item>otherwise the result is <see cref="EmbeddingSource.Fallback"/>: the model's default vector or zeros.</item>
/// </list>
/// A direct hit completes synchronously and allocates nothing.
/// </remarks>
public sealed partial class EmbeddingCache : IEmbeddingCache, IDisposable, IAsyncDisposable
{
    private readonly ModelRegistry _registry;
    private readonly TimeProvider _time;
    private readonly ERCacheMetrics _metrics;
    private readonly ILogger _logger;
    private readonly IDisposable? _reloadSubscription;
    private readonly RegionalTier? _regional;
    private readonly RegionalInvalidator? _invalidator;
    private readonly SnapshotKeeper? _snapshots;
    private readonly TimeSpan _snapshotWriteTimeout;
    private readonly string _sectionPath;
    private readonly Dictionary<string, string> _buildTimeSettings = []; // settings read once (Regional, Snapshots), by path
    private Dictionary<string, string> _reloadedSettings = []; // the same, as the last reload had them
    private string? _reloadProblem; // why the last reload was not applied; null once one is
    private readonly InferenceDispatcher _dispatcher;
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IDisposable? _configurationSubscription;
    private readonly Lock _reloadLock = new(); // one reload at a time, each read when it is applied
    private ERCacheOptions? _builtFrom; // the options the constructor read, until it has subscribed to their changes (null after Create)
    private int _disposed;

    // Requests with misses still running, plus the cache's own lease until it is disposed: whoever returns the last one
    // releases the model versions, regional tier and meter, so a request in flight at disposal completes.
    private readonly LeaseCount _requests;

    /// <summary>
    /// Creates a cache that follows <paramref name="options"/>, applying each reload atomically per model.
    /// This is the constructor dependency injection uses; without DI, <see cref="Create"/> is simpler.
    /// </summary>
    /// <param name="options">The <c>ERCache</c> options; an invalid reload is rejected and the previous policies stay.</param>
    /// <param name="resolveInference">Returns the inference for a model name, or <see langword="null"/> when none is registered.</param>
    /// <param name="services">The clock, meter factory, logger, dispatcher and regional store; each defaults when null.</param>
    /// <param name="sectionPath">The configuration path named in validation messages.</param>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names every bad field.</exception>
    /// <exception cref="InvalidOperationException">A configured model has no inference.</exception>
    public EmbeddingCache(
        IOptionsMonitor<ERCacheOptions> options,
        Func<string, IEmbeddingInference?> resolveInference,
        EmbeddingCacheServices? services = null,
        string sectionPath = ERCacheOptions.DefaultSectionPath)
        : this(options, resolveInference, services, sectionPath, optionsValidated: false)
    {
    }

    /// <summary>The constructor dependency injection uses: <c>AddERCache</c> registers the validator in the options
    /// pipeline, so <paramref name="options"/>' value was validated when it was created and is not validated again.</summary>
    internal EmbeddingCache(
        IOptionsMonitor<ERCacheOptions> options, Func<string, IEmbeddingInference?> resolveInference, EmbeddingCacheServices? services,
        string sectionPath, bool optionsValidated)
        : this(options?.CurrentValue!, resolveInference, services, sectionPath, sampling: null, optionsValidated)
    {
        _reloadSubscription = options!.OnChange(OnOptionsChanged);
        lock (_reloadLock)
        {
            // Changed after it was read above and before the subscription: nobody else applies it. Read under the lock, so
            // a change raised meanwhile is applied after this, not before.
            var current = options.CurrentValue;
            if (!ReferenceEquals(current, _builtFrom))
            {
                ApplyReload(current);
            }

            _builtFrom = null;
        }
    }

    private EmbeddingCache(
        ERCacheOptions options, Func<string, IEmbeddingInference?> resolveInference, EmbeddingCacheServices? services, string sectionPath,
        Random? sampling, bool optionsValidated = false)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(resolveInference);
        _requests = new LeaseCount(() => _ = ReleaseAsync());
        _time = services?.TimeProvider ?? TimeProvider.System;
        _logger = services?.Logger ?? NullLogger.Instance;
        _dispatcher = services?.Dispatcher ?? InferenceDispatcher.DedicatedThreads;
        _metrics = new ERCacheMetrics(services?.MeterFactory);
        _builtFrom = options;
        try
        {
            // Validated once, before the regional tier starts its flush loop and breaker on these settings.
            var validator = new ERCacheOptionsValidator(sectionPath);
            if (!optionsValidated)
            {
                validator.ThrowIfInvalid(options);
            }

            var invalidationChannel = InvalidationChannel(options, services);
            if (services?.RegionalStore is { } regionalStore)
            {
                _regional = new RegionalTier(regionalStore, options.Regional ?? new RegionalOptions(), _time, _metrics, _logger);
            }

            _registry = new ModelRegistry(options, resolveInference, _time, _metrics, validator, _logger, _dispatcher, _regional, sampling ?? Random.Shared);
            if (invalidationChannel is not null)
            {
                _invalidator = StartInvalidation(invalidationChannel);
            }

            WarmUpCode(_registry.States.Select(s => s.Current.Policy));
            _sectionPath = sectionPath;
            _buildTimeSettings = BuildTimeSettings(options);
            _reloadedSettings = _buildTimeSettings;
            if (options.Snapshots is { Directory: not null } snapshots)
            {
                _snapshots = new SnapshotKeeper(snapshots, _registry, _time, _logger, _invalidator);
                _snapshotWriteTimeout = snapshots.WriteTimeout;
            }
        }
        catch
        {
            // Whatever was built is released, in the order ReleaseAsync releases it. Nothing after the registry throws
            // today but a bug, which must not leave the regional tier's flush loop or subscription running.
            _snapshots?.Dispose();
            _invalidator?.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(1));
            _registry?.Dispose();
            _regional?.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(1));
            _metrics.Dispose();
            throw;
        }
    }

    /// <summary>Builds a cache without dependency injection.</summary>
    /// <param name="options">The models; validated here.</param>
    /// <param name="inference">The inference of every configured model, by model name.</param>
    /// <param name="services">The clock, meter factory, logger, dispatcher and regional store; each defaults when null.</param>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names every bad field.</exception>
    /// <exception cref="InvalidOperationException">A configured model has no inference.</exception>
    public static EmbeddingCache Create(
        ERCacheOptions options, IReadOnlyDictionary<string, IEmbeddingInference> inference, EmbeddingCacheServices? services = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(inference);
        return FromDictionary(options, inference, services, sampling: null);
    }

    /// <summary><see cref="Create"/> with the random source drift sampling draws from (seeded in tests; it is read from
    /// the hit path, so a source shared by several threads must be thread-safe, as <see cref="Random.Shared"/> is).</summary>
    internal static EmbeddingCache CreateWithSampling(
        ERCacheOptions options, IReadOnlyDictionary<string, IEmbeddingInference> inference, TimeProvider timeProvider, InferenceDispatcher dispatcher,
        Random sampling) =>
        FromDictionary(options, inference, new EmbeddingCacheServices { TimeProvider = timeProvider, Dispatcher = dispatcher }, sampling);

    private static EmbeddingCache FromDictionary(
        ERCacheOptions options, IReadOnlyDictionary<string, IEmbeddingInference> inference, EmbeddingCacheServices? services, Random? sampling)
    {
        var byName = new Dictionary<string, IEmbeddingInference>(inference, StringComparer.OrdinalIgnoreCase);
        var cache = new EmbeddingCache(options, name => byName.GetValueOrDefault(name), services, ERCacheOptions.DefaultSectionPath, sampling);
        cache._builtFrom = null; // only the constructor that follows an IOptionsMonitor compares against it; the caller owns the options
        return cache;
    }

    /// <inheritdoc />
    public IReadOnlyCollection<string> Models => _registry.ModelNames;

    /// <summary>The meter this cache records on (named <see cref="ERCacheDiagnostics.MeterName"/>).</summary>
    public System.Diagnostics.Metrics.Meter Meter => _metrics.Meter;

    /// <inheritdoc />
    public ModelPolicy GetPolicy(string model)
    {
        CheckDisposed();
        return Resolve(model).Policy;
    }

    /// <inheritdoc />
    public TierStatistics? GetTierStatistics(string model, TierKind tier)
    {
        CheckDisposed();
        return Tier(Resolve(model), tier)?.GetStatistics();
    }

    /// <summary>The regional store's invalidation channel when this cache uses it: the store has one and
    /// <c>Regional:Invalidation</c> is not off.</summary>
    private static IRegionalInvalidation? InvalidationChannel(ERCacheOptions options, EmbeddingCacheServices? services) =>
        services?.RegionalStore is IRegionalInvalidation channel && options.Regional?.Invalidation != false ? channel : null;

    /// <summary>
    /// Completes when the cache is ready to serve at full strength: at once without <c>Snapshots</c>, else when the
    /// start-up load of the snapshots has finished (or stopped at <c>Snapshots:LoadTimeout</c>), and the first attempt to
    /// subscribe to the regional store's invalidation channel has ended (when the store has one). Requests are served
    /// before that too, from whatever is loaded so far. <c>AddERCache()</c>'s hosted start-up awaits it, so a host
    /// begins taking traffic after the load.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting (the load goes on).</param>
    public Task WhenReadyAsync(CancellationToken cancellationToken = default) =>
        Task.WhenAll(_snapshots?.Loaded ?? Task.CompletedTask, _invalidator?.Started ?? Task.CompletedTask).WaitAsync(cancellationToken);

    /// <summary>Writes the snapshots of every model's tiers now (as the cache does at disposal and every
    /// <c>Snapshots:Interval</c>); does nothing without <c>Snapshots:Directory</c>. Never throws for an I/O failure: it is
    /// logged and the previous snapshot kept.</summary>
    public Task WriteSnapshotsAsync()
    {
        CheckDisposed();
        return _snapshots?.WriteAllAsync() ?? Task.CompletedTask;
    }

    /// <summary>Whether snapshots are still loading (for the health check).</summary>
    internal bool IsLoadingSnapshots => _snapshots is { Loaded.IsCompleted: false };

    /// <summary>The snapshots' keeper, when <c>Snapshots:Directory</c> is set (for the health check and tests).</summary>
    internal SnapshotKeeper? Snapshots => _snapshots;

    /// <summary>The clock of every TTL and deadline (the health check's window too).</summary>
    internal TimeProvider Time => _time;

    /// <summary>Whether the cache has been disposed.</summary>
    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The model versions now, for the health check.</summary>
    internal IEnumerable<ModelVersionState> StatesForHealth() => _registry.States;

    /// <summary>The regional store's circuit, or null without a store or breaker.</summary>
    internal Polly.CircuitBreaker.CircuitState? RegionalCircuitState => _regional?.CircuitState;

    /// <summary>The regional tier, or null without a store (for the health check and tests).</summary>
    internal Regional.RegionalTier? RegionalTier => _regional;

    /// <summary>Entries currently held by one tier of <paramref name="model"/> (0 when the tier is disabled).</summary>
    internal int GetEntryCount(string model, TierKind tier) => GetTier(model, tier)?.Count ?? 0;

    /// <summary>One tier of <paramref name="model"/> (for tests of the tiers' lifetime).</summary>
    internal EmbeddingTier? GetTier(string model, TierKind tier) => Tier(Resolve(model), tier);

    /// <summary>Inference delegate calls in flight for <paramref name="model"/> (for tests and diagnostics).</summary>
    internal int GetInFlight(string model) => Resolve(model).State.Scheduler.InFlight;

    /// <summary>For tests: completes once the model has no delegate call in flight and nothing queued.</summary>
    internal Task WhenIdleAsync(string model) => Resolve(model).State.Scheduler.WhenIdleAsync();

    /// <summary>Users of <paramref name="model"/> queued for a delegate call (the replay's queue-length series).</summary>
    internal int GetQueuedUsers(string model) => Resolve(model).State.Scheduler.Queued;

    /// <summary>Users of <paramref name="model"/> waiting for or in inference (for tests that check nothing is left behind).</summary>
    internal int GetPendingUsers(string model) => Resolve(model).State.Scheduler.PendingUsers;

    /// <summary>Inferences of <paramref name="model"/> whose creating request the deadline alarm will answer (for tests that
    /// check nothing stays linked).</summary>
    internal int GetAlarmCount(string model) => Resolve(model).State.Scheduler.AlarmCount;

    /// <inheritdoc />
    public ValueTask<EmbeddingResult> GetAsync(string model, long userId, Memory<float> destination, CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        return GetAsync(Resolve(model), userId, destination, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask GetManyAsync(string model, ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        return GetManyAsync(Resolve(model), userIds, destination, results, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<EmbeddingResult> GetAsync(string model, long userId, Memory<float> destination, EmbeddingRequestOptions options, CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        return GetAsync(Resolve(model), userId, destination, options, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask GetManyAsync(
        string model, ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, EmbeddingRequestOptions options,
        CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        return GetManyAsync(Resolve(model), userIds, destination, results, options, cancellationToken);
    }

    /// <inheritdoc />
    public EmbeddingModel GetModel(string model)
    {
        CheckDisposed();
        var runtime = Resolve(model);
        return new ModelHandle(this, runtime.Policy.Name);
    }

    /// <summary>The current set of models (a reload replaces the object), for model handles; throws once disposed.</summary>
    internal object ModelsSnapshot()
    {
        CheckDisposed();
        return _registry.Snapshot;
    }

    /// <summary>A model's version state by name, for model handles (which read its current snapshot on every call).</summary>
    internal ModelVersionState ResolveState(string model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!_registry.TryGet(model, out var state))
        {
            ThrowHelper.ThrowUnknownModel(model, _registry.ModelNames);
        }

        return state;
    }

    /// <inheritdoc />
    public Task FlushRegionalWritesAsync(CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        return _regional?.FlushAsync(cancellationToken) ?? Task.CompletedTask;
    }

    private static EmbeddingTier? Tier(ModelRuntime runtime, TierKind tier) => tier switch
    {
        TierKind.Direct => runtime.Direct,
        TierKind.Failover => runtime.Failover,
        _ => throw new ArgumentOutOfRangeException(nameof(tier), tier, "A tier is Direct or Failover."),
    };

    private ModelRuntime Resolve(string model) => ResolveState(model).Current;
}
