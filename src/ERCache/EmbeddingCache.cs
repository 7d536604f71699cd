using System.Buffers;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Internal;
using ERCache.Policies;
using ERCache.Tiers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace ERCache;

/// <summary>
/// The request path of ERCache: direct tier, then inference, then failover tier, then fallback, per model.
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
public sealed partial class EmbeddingCache : IEmbeddingCache, IDisposable
{
    private readonly ModelPolicyRegistry _registry;
    private readonly TimeProvider _time;
    private readonly ERCacheMetrics _metrics;
    private readonly ILogger _logger;
    private readonly IDisposable? _reloadSubscription;
    private int _disposed;

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
    /// <exception cref="OptionsValidationException">The options are invalid; the message names every bad field.</exception>
    /// <exception cref="InvalidOperationException">A configured model has no inference.</exception>
    public EmbeddingCache(
        IOptionsMonitor<ERCacheOptions> options,
        Func<string, IEmbeddingInference?> resolveInference,
        TimeProvider? timeProvider = null,
        System.Diagnostics.Metrics.IMeterFactory? meterFactory = null,
        ILogger<EmbeddingCache>? logger = null,
        string sectionPath = ERCacheOptions.DefaultSectionPath)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(resolveInference);
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _metrics = new ERCacheMetrics(meterFactory);
        try
        {
            _registry = new ModelPolicyRegistry(options.CurrentValue, resolveInference, _time, _metrics, sectionPath, _logger);
        }
        catch
        {
            _metrics.Dispose();
            throw;
        }

        _reloadSubscription = options.OnChange(OnOptionsChanged);
    }

    private EmbeddingCache(ERCacheOptions options, Func<string, IEmbeddingInference?> resolveInference, TimeProvider? timeProvider, System.Diagnostics.Metrics.IMeterFactory? meterFactory)
    {
        _time = timeProvider ?? TimeProvider.System;
        _logger = NullLogger.Instance;
        _metrics = new ERCacheMetrics(meterFactory);
        try
        {
            _registry = new ModelPolicyRegistry(options, resolveInference, _time, _metrics, ERCacheOptions.DefaultSectionPath, _logger);
        }
        catch
        {
            _metrics.Dispose();
            throw;
        }
    }

    /// <summary>Builds a cache without dependency injection.</summary>
    /// <param name="options">The models; validated here.</param>
    /// <param name="inference">The inference of every configured model, by model name.</param>
    /// <param name="timeProvider">The clock; <see cref="TimeProvider.System"/> when null.</param>
    /// <param name="meterFactory">Creates the <c>ERCache</c> meter; a private meter when null.</param>
    /// <exception cref="OptionsValidationException">The options are invalid; the message names every bad field.</exception>
    /// <exception cref="InvalidOperationException">A configured model has no inference.</exception>
    public static EmbeddingCache Create(
        ERCacheOptions options,
        IReadOnlyDictionary<string, IEmbeddingInference> inference,
        TimeProvider? timeProvider = null,
        System.Diagnostics.Metrics.IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(inference);
        var byName = new Dictionary<string, IEmbeddingInference>(inference, StringComparer.OrdinalIgnoreCase);
        return new EmbeddingCache(options, name => byName.GetValueOrDefault(name), timeProvider, meterFactory);
    }

    /// <inheritdoc />
    public IReadOnlyCollection<string> Models => _registry.ModelNames;

    /// <summary>The meter this cache records on (named <see cref="ERCacheDiagnostics.MeterName"/>).</summary>
    public System.Diagnostics.Metrics.Meter Meter => _metrics.Meter;

    /// <summary>The policy currently in force for <paramref name="model"/>.</summary>
    /// <exception cref="ArgumentException">Unknown model.</exception>
    public ModelPolicy GetPolicy(string model) => Resolve(model).Policy;

    /// <summary>Entries currently held by one tier of <paramref name="model"/> (0 when the tier is disabled).</summary>
    /// <exception cref="ArgumentException">Unknown model.</exception>
    public int GetEntryCount(string model, TierKind tier)
    {
        var runtime = Resolve(model);
        return (tier == TierKind.Direct ? runtime.Direct : runtime.Failover)?.Count ?? 0;
    }

    /// <summary>What one tier of <paramref name="model"/> holds and costs, or <see langword="null"/> when the tier is
    /// disabled.</summary>
    /// <exception cref="ArgumentException">Unknown model.</exception>
    public TierStatistics? GetTierStatistics(string model, TierKind tier)
    {
        var runtime = Resolve(model);
        return (tier == TierKind.Direct ? runtime.Direct : runtime.Failover)?.GetStatistics();
    }

    /// <summary>Inference delegate calls in flight for <paramref name="model"/> (for tests and diagnostics).</summary>
    internal int GetInFlight(string model) => Resolve(model).Scheduler.InFlight;

    /// <summary>Users of <paramref name="model"/> waiting for or in inference (for tests that check nothing is left behind).</summary>
    internal int GetPendingUsers(string model) => Resolve(model).Scheduler.PendingUsers;

    /// <inheritdoc />
    public ValueTask<EmbeddingResult> GetAsync(string model, long userId, Memory<float> destination, CancellationToken cancellationToken = default)
    {
        var runtime = Resolve(model);
        if (destination.Length != runtime.Policy.Dimensions)
        {
            ThrowHelper.ThrowDestinationLength(nameof(destination), runtime.Policy, destination.Length, 1);
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<EmbeddingResult>(cancellationToken);
        }

        long now = _time.GetTimestamp();
        if (runtime.Direct is { } direct && direct.TryRead(userId, now, runtime.DirectTtl, destination.Span, out long writtenAt))
        {
            var hit = new EmbeddingResult(EmbeddingSource.Direct, Age(writtenAt, now), runtime.Policy.Version, InferenceFailureCause.None, hasVector: true);
            _metrics.RecordResult(runtime.Policy.Name, hit);
            return new ValueTask<EmbeddingResult>(hit);
        }

        return new ValueTask<EmbeddingResult>(MissAsync(runtime, userId, destination, now, cancellationToken));
    }

    /// <inheritdoc />
    public ValueTask GetManyAsync(string model, ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, CancellationToken cancellationToken = default)
    {
        var runtime = Resolve(model);
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

        long now = _time.GetTimestamp();
        var users = userIds.Span;
        var vectors = destination.Span;
        var resultSpan = results.Span;
        int[]? misses = null;
        int missCount = 0;
        for (int i = 0; i < users.Length; i++)
        {
            if (runtime.Direct is { } direct && direct.TryRead(users[i], now, runtime.DirectTtl, vectors.Slice(i * dims, dims), out long writtenAt))
            {
                resultSpan[i] = new EmbeddingResult(EmbeddingSource.Direct, Age(writtenAt, now), runtime.Policy.Version, InferenceFailureCause.None, hasVector: true);
                _metrics.RecordResult(runtime.Policy.Name, resultSpan[i]);
                continue;
            }

            misses ??= ArrayPool<int>.Shared.Rent(users.Length - i);
            misses[missCount++] = i;
        }

        return misses is null
            ? default
            : new ValueTask(ResolveMissesAsync(runtime, userIds, misses, missCount, destination, results, now, cancellationToken));
    }

    /// <summary>Stops following configuration reloads and releases the meter when the cache owns it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _reloadSubscription?.Dispose();
            _metrics.Dispose();
        }
    }

    private async Task<EmbeddingResult> MissAsync(ModelRuntime runtime, long userId, Memory<float> destination, long now, CancellationToken cancellationToken)
    {
        var result = new EmbeddingResult[1];
        var miss = ArrayPool<int>.Shared.Rent(1);
        miss[0] = 0;
        await ResolveMissesAsync(runtime, new[] { userId }, miss, 1, destination, result, now, cancellationToken).ConfigureAwait(false);
        return result[0];
    }

    /// <summary>
    /// Hands the misses to the model's scheduler (which coalesces, batches and bounds them), waits for them until
    /// the request's deadline, then answers each user: fresh, or failover / fallback with the cause.
    /// </summary>
    private async Task ResolveMissesAsync(
        ModelRuntime runtime, ReadOnlyMemory<long> userIds, int[] misses, int missCount,
        Memory<float> destination, Memory<EmbeddingResult> results, long now, CancellationToken cancellationToken)
    {
        try
        {
            if (runtime.Inference is null)
            {
                ThrowHelper.ThrowNoInference(runtime.Policy.Name);
            }

            var scheduler = runtime.Scheduler;
            long deadline = now + runtime.InferenceTimeout;
            var tickets = new InferenceTicket[missCount];
            scheduler.Submit(userIds.Span, misses.AsSpan(0, missCount), deadline, tickets, inline: runtime.Policy.RunInline);
            if (!AllCompleted(tickets))
            {
                var all = Task.WhenAll(tickets.Select(t => t.Task));
                var remaining = runtime.Policy.InferenceTimeout - _time.GetElapsedTime(now);
                try
                {
                    if (remaining > TimeSpan.Zero)
                    {
                        await all.WaitAsync(remaining, _time, cancellationToken).ConfigureAwait(false);
                    }
                }
                catch (TimeoutException)
                {
                    // The deadline passed: whatever has not finished is answered from failover or as a fallback.
                }
            }

            Complete(runtime, tickets, misses.AsSpan(0, missCount), userIds.Span, destination.Span, results.Span);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(misses);
        }
    }

    private static bool AllCompleted(InferenceTicket[] tickets)
    {
        foreach (var ticket in tickets)
        {
            if (!ticket.Task.IsCompleted)
            {
                return false;
            }
        }

        return true;
    }

    private void Complete(
        ModelRuntime runtime, InferenceTicket[] tickets, ReadOnlySpan<int> positions,
        ReadOnlySpan<long> users, Span<float> destination, Span<EmbeddingResult> results)
    {
        var policy = runtime.Policy;
        int dims = policy.Dimensions;
        long now = _time.GetTimestamp();
        Span<int> failures = stackalloc int[8];
        failures.Clear();
        for (int i = 0; i < positions.Length; i++)
        {
            int position = positions[i];
            var row = destination.Slice(position * dims, dims);
            var ticket = tickets[i];
            var cause = ticket.Task.IsCompletedSuccessfully
                ? ticket.Task.Result.Cause
                : ticket.Pending?.Started == true ? InferenceFailureCause.Timeout : InferenceFailureCause.Overload;
            EmbeddingResult result;
            if (cause == InferenceFailureCause.None)
            {
                ticket.Task.Result.Vector.AsSpan().CopyTo(row);
                result = new EmbeddingResult(EmbeddingSource.Fresh, TimeSpan.Zero, policy.Version, InferenceFailureCause.None, hasVector: true);
            }
            else
            {
                failures[(int)cause]++;
                result = ServeFailure(runtime, users[position], now, cause, row);
            }

            results[position] = result;
            _metrics.RecordResult(policy.Name, result);
        }

        for (int c = 1; c < failures.Length; c++)
        {
            _metrics.RecordInferenceFailures(policy.Name, (InferenceFailureCause)c, failures[c]);
        }
    }

    private EmbeddingResult ServeFailure(ModelRuntime runtime, long userId, long now, InferenceFailureCause cause, Span<float> row)
    {
        var policy = runtime.Policy;
        if (runtime.Failover is { } failover && failover.TryRead(userId, now, runtime.FailoverTtl, row, out long writtenAt))
        {
            return new EmbeddingResult(EmbeddingSource.Failover, Age(writtenAt, now), policy.Version, cause, hasVector: true);
        }

        // A failed read may have left part of another entry in the row: overwrite it entirely.
        if (policy.DefaultVector is { } fallback)
        {
            fallback.Span.CopyTo(row);
        }
        else
        {
            row.Clear();
        }

        return new EmbeddingResult(EmbeddingSource.Fallback, TimeSpan.Zero, policy.Version, cause, hasVector: policy.DefaultVector is not null);
    }

    private ModelRuntime Resolve(string model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!_registry.TryGet(model, out var runtime))
        {
            ThrowHelper.ThrowUnknownModel(model, _registry.ModelNames);
        }

        return runtime;
    }

    private TimeSpan Age(long writtenAt, long now) => writtenAt >= now ? TimeSpan.Zero : _time.GetElapsedTime(writtenAt, now);

    private void OnOptionsChanged(ERCacheOptions options, string? name)
    {
        if (name is not null && name != Options.DefaultName)
        {
            return;
        }

        try
        {
            _registry.Apply(options);
        }
        catch (OptionsValidationException ex)
        {
            LogReloadRejected(ex.Message);
        }
    }

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "Rejected an ERCache configuration reload; the previous policies stay in force: {Errors}")]
    private partial void LogReloadRejected(string errors);
}
