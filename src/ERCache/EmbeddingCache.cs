using System.Buffers;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Internal;
using ERCache.Models;
using ERCache.Regional;
using ERCache.Tiers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

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
    private readonly InferenceDispatcher _dispatcher;
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IDisposable? _configurationSubscription;
    private int _disposed;

    // Requests with misses still running, plus the cache's own lease until it is disposed: whoever returns the last one
    // releases the model versions, regional tier and meter, so a request in flight at disposal completes.
    private readonly LeaseCount _requests = new();

    /// <summary>
    /// Creates a cache that follows <paramref name="options"/>, applying each reload atomically per model.
    /// This is the constructor dependency injection uses; without DI, <see cref="Create"/> is simpler.
    /// </summary>
    /// <param name="options">The <c>ERCache</c> options; an invalid reload is rejected and the previous policies stay.</param>
    /// <param name="resolveInference">Returns the inference for a model name, or <see langword="null"/> when none is registered.</param>
    /// <param name="timeProvider">The clock for every TTL and deadline; <see cref="TimeProvider.System"/> when null.</param>
    /// <param name="meterFactory">Creates the <c>ERCache</c> meter; a private meter when null.</param>
    /// <param name="logger">Receives inference failures and rejected reloads.</param>
    /// <param name="sectionPath">The configuration path named in validation messages.</param>
    /// <param name="dispatcher">Where delegate calls run; <see cref="InferenceDispatcher.DedicatedThreads"/> when null.</param>
    /// <param name="regionalStore">The store shared by the hosts of a region, or null for local tiers only. Its
    /// settings (<c>ERCache:Regional</c>) are read once, here.</param>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names every bad field.</exception>
    /// <exception cref="InvalidOperationException">A configured model has no inference.</exception>
    public EmbeddingCache(
        IOptionsMonitor<ERCacheOptions> options,
        Func<string, IEmbeddingInference?> resolveInference,
        TimeProvider? timeProvider = null,
        System.Diagnostics.Metrics.IMeterFactory? meterFactory = null,
        ILogger<EmbeddingCache>? logger = null,
        string sectionPath = ERCacheOptions.DefaultSectionPath,
        InferenceDispatcher? dispatcher = null,
        IRegionalStore? regionalStore = null)
        : this(options?.CurrentValue!, resolveInference, timeProvider, meterFactory, logger, sectionPath, dispatcher, regionalStore) =>
        _reloadSubscription = options!.OnChange(OnOptionsChanged);

    private EmbeddingCache(
        ERCacheOptions options, Func<string, IEmbeddingInference?> resolveInference, TimeProvider? timeProvider,
        System.Diagnostics.Metrics.IMeterFactory? meterFactory, ILogger? logger, string sectionPath, InferenceDispatcher? dispatcher,
        IRegionalStore? regionalStore, bool warmUpCode = true, string meterName = ERCacheDiagnostics.MeterName)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(resolveInference);
        _time = timeProvider ?? TimeProvider.System;
        _logger = logger ?? NullLogger.Instance;
        _dispatcher = dispatcher ?? InferenceDispatcher.DedicatedThreads;
        _metrics = new ERCacheMetrics(meterFactory, meterName);
        try
        {
            if (regionalStore is not null)
            {
                // Checked before the tier starts its flush loop and breaker on these settings.
                var errors = new ERCacheOptionsValidator(sectionPath).Collect(options);
                if (errors.Count > 0)
                {
                    throw new OptionsValidationException(Options.DefaultName, typeof(ERCacheOptions), errors);
                }

                _regional = new RegionalTier(regionalStore, options.Regional ?? new RegionalOptions(), _time, _metrics, _logger);
            }

            _registry = new ModelRegistry(options, resolveInference, _time, _metrics, sectionPath, _logger, _dispatcher, _regional);
            if (warmUpCode)
            {
                WarmUpCode(_registry.States.Select(s => s.Current.Policy), _dispatcher);
            }
        }
        catch
        {
            _regional?.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(1));
            _metrics.Dispose();
            throw;
        }
    }

    /// <summary>Builds a cache without dependency injection.</summary>
    /// <param name="options">The models; validated here.</param>
    /// <param name="inference">The inference of every configured model, by model name.</param>
    /// <param name="timeProvider">The clock; <see cref="TimeProvider.System"/> when null.</param>
    /// <param name="meterFactory">Creates the <c>ERCache</c> meter; a private meter when null.</param>
    /// <param name="dispatcher">Where delegate calls run; <see cref="InferenceDispatcher.DedicatedThreads"/> when null.</param>
    /// <param name="regionalStore">The store shared by the hosts of a region, or null for local tiers only.</param>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names every bad field.</exception>
    /// <exception cref="InvalidOperationException">A configured model has no inference.</exception>
    public static EmbeddingCache Create(
        ERCacheOptions options,
        IReadOnlyDictionary<string, IEmbeddingInference> inference,
        TimeProvider? timeProvider = null,
        System.Diagnostics.Metrics.IMeterFactory? meterFactory = null,
        InferenceDispatcher? dispatcher = null,
        IRegionalStore? regionalStore = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(inference);
        var byName = new Dictionary<string, IEmbeddingInference>(inference, StringComparer.OrdinalIgnoreCase);
        return new EmbeddingCache(options, name => byName.GetValueOrDefault(name), timeProvider, meterFactory, logger: null, ERCacheOptions.DefaultSectionPath, dispatcher, regionalStore);
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

    /// <summary>The clock of every TTL and deadline (the health check's window too).</summary>
    internal TimeProvider Time => _time;

    /// <summary>Whether the cache has been disposed.</summary>
    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The model versions now, for the health check.</summary>
    internal IEnumerable<ModelVersionState> StatesForHealth() => _registry.States;

    /// <summary>The regional store's circuit, or null without a store or breaker.</summary>
    internal Polly.CircuitBreaker.CircuitState? RegionalCircuitState => _regional?.CircuitState;

    /// <summary>Entries currently held by one tier of <paramref name="model"/> (0 when the tier is disabled).</summary>
    internal int GetEntryCount(string model, TierKind tier) => GetTier(model, tier)?.Count ?? 0;

    /// <summary>One tier of <paramref name="model"/> (for tests of the tiers' lifetime).</summary>
    internal EmbeddingTier? GetTier(string model, TierKind tier) => Tier(Resolve(model), tier);

    /// <summary>Inference delegate calls in flight for <paramref name="model"/> (for tests and diagnostics).</summary>
    internal int GetInFlight(string model) => Resolve(model).State.Scheduler.InFlight;

    /// <summary>Users of <paramref name="model"/> waiting for or in inference (for tests that check nothing is left behind).</summary>
    internal int GetPendingUsers(string model) => Resolve(model).State.Scheduler.PendingUsers;

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
    public void SetVector(string model, long userId, ReadOnlySpan<float> vector)
    {
        CheckDisposed();
        var runtime = Resolve(model);
        if (vector.Length != runtime.Policy.Dimensions)
        {
            ThrowHelper.ThrowDestinationLength(nameof(vector), runtime.Policy, vector.Length, 1);
        }

        int bad = Storage.RowKernels.IndexOfNonFinite(vector);
        if (bad >= 0)
        {
            throw new ArgumentException(
                $"The vector for model '{runtime.Policy.Name}' has a non-finite value at index {bad} ({vector[bad].ToString(System.Globalization.CultureInfo.InvariantCulture)}); every value must be finite.",
                nameof(vector));
        }

        runtime.Set(userId, vector);
    }

    /// <inheritdoc />
    public Task<int> RemoveAsync(string model, long userId, CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        var runtime = Resolve(model);
        return RemoveAsync([runtime], userId, runtime.RegionalField, cancellationToken);
    }

    /// <inheritdoc />
    public Task<int> RemoveAsync(long userId, CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        return RemoveAsync([.. _registry.States.Select(s => s.Current)], userId, field: null, cancellationToken);
    }

    /// <inheritdoc />
    public int Clear(string model)
    {
        CheckDisposed();
        return Resolve(model).Clear();
    }

    private async Task<int> RemoveAsync(ModelRuntime[] runtimes, long userId, string? field, CancellationToken cancellationToken)
    {
        // Order matters: stop running inference from writing, delete regionally, then locally, so that no lookup or
        // inference that began before the removal can put the user back afterwards.
        foreach (var runtime in runtimes)
        {
            runtime.BeginRemove(userId);
        }

        int removed = 0;
        try
        {
            // One call covers every model: a single-model removal deletes the model's field, an all-models one the
            // user's whole hash. A model that does not use the regional tier has nothing there.
            if (_regional is not null && (field is null || runtimes[0].Regional is not null))
            {
                await _regional.RemoveAsync(userId, field, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            foreach (var runtime in runtimes)
            {
                removed += runtime.FinishRemove(userId);
            }
        }

        return removed;
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

    internal ValueTask<EmbeddingResult> GetAsync(ModelRuntime runtime, long userId, Memory<float> destination, EmbeddingRequestOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        CheckOptions(options);
        if (destination.Length != runtime.Policy.Dimensions)
        {
            ThrowHelper.ThrowDestinationLength(nameof(destination), runtime.Policy, destination.Length, 1);
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<EmbeddingResult>(cancellationToken);
        }

        return !options.ForceRefresh && runtime.TryServeDirect(userId, runtime.TtlNow, runtime.DirectTtlFor(options), destination.Span, out var hit)
            ? new ValueTask<EmbeddingResult>(hit)
            : new ValueTask<EmbeddingResult>(MissAsync(runtime, userId, destination, options, cancellationToken));
    }

    /// <summary>The call without options: the single-user hit is the hottest path, so it skips the options' checks
    /// rather than forwarding to the overload above with <see cref="EmbeddingRequestOptions.Default"/>.</summary>
    internal ValueTask<EmbeddingResult> GetAsync(ModelRuntime runtime, long userId, Memory<float> destination, CancellationToken cancellationToken)
    {
        if (destination.Length != runtime.Policy.Dimensions)
        {
            ThrowHelper.ThrowDestinationLength(nameof(destination), runtime.Policy, destination.Length, 1);
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<EmbeddingResult>(cancellationToken);
        }

        return runtime.TryServeDirect(userId, runtime.TtlNow, destination.Span, out var hit)
            ? new ValueTask<EmbeddingResult>(hit)
            : new ValueTask<EmbeddingResult>(MissAsync(runtime, userId, destination, EmbeddingRequestOptions.Default, cancellationToken));
    }

    internal ValueTask GetManyAsync(
        ModelRuntime runtime, ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, CancellationToken cancellationToken) =>
        GetManyAsync(runtime, userIds, destination, results, EmbeddingRequestOptions.Default, cancellationToken);

    internal ValueTask GetManyAsync(
        ModelRuntime runtime, ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, EmbeddingRequestOptions options,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        CheckOptions(options);
        int dims = runtime.Policy.Dimensions;
        if ((long)destination.Length != (long)userIds.Length * dims)
        {
            ThrowHelper.ThrowDestinationLength(nameof(destination), runtime.Policy, destination.Length, userIds.Length);
        }

        if (results.Length != userIds.Length)
        {
            ThrowHelper.ThrowResultsLength(nameof(results), results.Length, userIds.Length);
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        long now = runtime.TtlNow;
        var users = userIds.Span;
        var vectors = destination.Span;
        var resultSpan = results.Span;
        int[]? misses = null;
        int missCount = 0;
        long ttl = runtime.DirectTtlFor(options);
        var direct = options.ForceRefresh ? null : runtime.Direct;
        for (int i = 0; i < users.Length; i++)
        {
            if (direct is not null && i % EmbeddingTier.PrefetchBatch == 0 && users.Length - i > 1)
            {
                // A batch knows its keys up front: start every next user's loads before copying the first.
                direct.Prefetch(users[i..]);
            }

            if (direct is null || !runtime.TryServeDirect(users[i], now, ttl, vectors.Slice(i * dims, dims), out resultSpan[i]))
            {
                misses ??= ArrayPool<int>.Shared.Rent(users.Length - i);
                misses[missCount++] = i;
            }
        }

        return misses is null
            ? default
            : new ValueTask(ServeMissesAsync(runtime, userIds, misses, missCount, destination, results, options, cancellationToken));
    }

    /// <inheritdoc />
    public Task FlushRegionalWritesAsync(CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        return _regional?.FlushAsync(cancellationToken) ?? Task.CompletedTask;
    }

    /// <summary>
    /// Stops serving: later calls throw <see cref="ObjectDisposedException"/>, configuration reloads are no longer
    /// followed. Requests already waiting for inference complete as usual (by their deadline); once the last one has,
    /// the schedulers (timers, spare buffers), the tiers (MemoryCache tiers are disposed), the regional tier (its queued
    /// writes are flushed, bounded by <c>Regional:WriteTimeout</c>) and the meter are released. With no request in
    /// flight this happens here; otherwise it happens when the last request completes, and this method does not wait.
    /// </summary>
    public void Dispose()
    {
        // With no request in flight the release starts here: wait (bounded) for the regional tier's last writes.
        if (BeginDispose() is true && _regional is not null && !_released.Task.Wait(_regional.WriteTimeout + _regional.WriteTimeout))
        {
            Log.RegionalNotFlushed(_logger);
        }
    }

    /// <summary>Like <see cref="Dispose"/>, and completes once every request in flight has completed and everything is
    /// released (the regional tier's last writes included).</summary>
    public async ValueTask DisposeAsync()
    {
        BeginDispose();
        await _released.Task.ConfigureAwait(false);
    }

    /// <summary>Marks the cache disposed and returns its own lease. Null when it was disposed already; true when no request
    /// was in flight and the release has started; false when the last request in flight will start it.</summary>
    private bool? BeginDispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return null;
        }

        _reloadSubscription?.Dispose();
        _configurationSubscription?.Dispose();
        if (_requests.Close())
        {
            _ = ReleaseAsync();
            return true;
        }

        return false;
    }

    private void CheckDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            ThrowHelper.ThrowDisposed();
        }
    }

    private void ExitRequest()
    {
        if (_requests.Release())
        {
            _ = ReleaseAsync();
        }
    }

    private async Task ReleaseAsync()
    {
        try
        {
            _registry.Dispose();
            if (_regional is not null)
            {
                await _regional.DisposeAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            Log.ReleaseFailed(_logger, ex);
        }
        finally
        {
            _metrics.Dispose();
            _released.TrySetResult();
        }
    }

    private static void CheckOptions(EmbeddingRequestOptions options)
    {
        if (options.MaxAge is { } maxAge && maxAge < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options), maxAge, $"EmbeddingRequestOptions.MaxAge must not be negative (got {maxAge}).");
        }
    }

    private async Task<EmbeddingResult> MissAsync(
        ModelRuntime runtime, long userId, Memory<float> destination, EmbeddingRequestOptions options, CancellationToken cancellationToken)
    {
        if (!_requests.TryAcquire())
        {
            ThrowHelper.ThrowDisposed();
        }

        try
        {
            if (!runtime.State.TryEnter())
            {
                // A reload retired this version between the direct lookup and now: ask the model's current version.
                return await GetAsync(Resolve(runtime.Policy.Name), userId, destination, options, cancellationToken).ConfigureAwait(false);
            }

            try
            {
                var result = new EmbeddingResult[1];
                var miss = ArrayPool<int>.Shared.Rent(1);
                miss[0] = 0;
                await runtime.ServeMissesAsync(new[] { userId }, miss, 1, destination, result, options, cancellationToken).ConfigureAwait(false);
                return result[0];
            }
            finally
            {
                runtime.State.Exit();
            }
        }
        finally
        {
            ExitRequest();
        }
    }

    private async Task ServeMissesAsync(
        ModelRuntime runtime, ReadOnlyMemory<long> userIds, int[] misses, int missCount, Memory<float> destination, Memory<EmbeddingResult> results,
        EmbeddingRequestOptions options, CancellationToken cancellationToken)
    {
        if (!_requests.TryAcquire())
        {
            ArrayPool<int>.Shared.Return(misses);
            ThrowHelper.ThrowDisposed();
        }

        try
        {
            if (!runtime.State.TryEnter())
            {
                // A reload retired this version after the direct lookups: answer the whole batch from the model's current
                // version, so one call never mixes two versions' settings.
                ArrayPool<int>.Shared.Return(misses);
                await GetManyAsync(Resolve(runtime.Policy.Name), userIds, destination, results, options, cancellationToken).ConfigureAwait(false);
                return;
            }

            try
            {
                await runtime.ServeMissesAsync(userIds, misses, missCount, destination, results, options, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                runtime.State.Exit();
            }
        }
        finally
        {
            ExitRequest();
        }
    }

    private static EmbeddingTier? Tier(ModelRuntime runtime, TierKind tier) => tier switch
    {
        TierKind.Direct => runtime.Direct,
        TierKind.Failover => runtime.Failover,
        _ => throw new ArgumentOutOfRangeException(nameof(tier), tier, "A tier is Direct or Failover."),
    };

    private ModelRuntime Resolve(string model) => ResolveState(model).Current;

    /// <summary>
    /// Follows a configuration section directly (what <c>AddERCache()</c> uses instead of the options monitor, whose
    /// validation would throw out of the configuration reload): each reload is bound with the checked binder and
    /// applied whole, or logged and ignored.
    /// </summary>
    internal void FollowConfiguration(IConfiguration section, string sectionPath) =>
        _configurationSubscription = ChangeToken.OnChange(section.GetReloadToken, () =>
        {
            var options = new ERCacheOptions();
            try
            {
                ERCacheConfigurationBinder.Bind(section, sectionPath, options);
            }
            catch (Exception ex)
            {
                Log.ReloadFailed(_logger, ex);
                return;
            }

            ApplyReload(options);
        });

    private void OnOptionsChanged(ERCacheOptions options, string? name)
    {
        if (name is not null && name != Options.DefaultName)
        {
            return;
        }

        ApplyReload(options);
    }

    /// <summary>Applies a reload whole, or logs why it cannot be and leaves the running policies in force; never throws
    /// into the code that reloaded configuration.</summary>
    private void ApplyReload(ERCacheOptions options)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        try
        {
            _registry.Apply(options);
        }
        catch (Exception ex) when (ex is OptionsValidationException or InvalidOperationException)
        {
            Log.ReloadRejected(_logger, ex.Message); // nothing was swapped: the running policies stay in force
        }
        catch (Exception ex)
        {
            Log.ReloadFailed(_logger, ex);
        }
    }

}
