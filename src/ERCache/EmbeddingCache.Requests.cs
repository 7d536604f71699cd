using System.Buffers;
using System.Runtime.CompilerServices;
using ERCache.Internal;
using ERCache.Models;
using ERCache.Tiers;

namespace ERCache;

// The request path's entry: argument checks, the direct tier inline (a hit completes synchronously and allocates
// nothing), and the misses handed to the model's runtime under a lease of the cache and of the model version. A miss
// that waited finishes on the thread that completed its inference; its caller continues elsewhere (CallerContinuation).
public sealed partial class EmbeddingCache
{
    internal ValueTask<EmbeddingResult> GetAsync(ModelRuntime runtime, long userId, Memory<float> destination, EmbeddingRequestOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        runtime = runtime.RouteFor(userId);
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
            : MissAsync(runtime, userId, destination, options, cancellationToken);
    }

    /// <summary>The call without options: the single-user hit is the hottest path, so it skips the options' checks
    /// rather than forwarding to the overload above with <see cref="EmbeddingRequestOptions.Default"/>.</summary>
    internal ValueTask<EmbeddingResult> GetAsync(ModelRuntime runtime, long userId, Memory<float> destination, CancellationToken cancellationToken)
    {
        runtime = runtime.RouteFor(userId); // a rollout's gradual switch; this one when none is configured
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
            : MissAsync(runtime, userId, destination, EmbeddingRequestOptions.Default, cancellationToken);
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

        return runtime.IsSwitching
            ? new ValueTask(GetManySwitchingAsync(runtime, userIds, destination, results, options, cancellationToken))
            : GetManyOn(runtime, userIds, destination, results, options, cancellationToken);
    }

    /// <summary>The users of a request served by one runtime: direct hits here, the misses handed to the runtime.</summary>
    private ValueTask GetManyOn(
        ModelRuntime runtime, ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, EmbeddingRequestOptions options,
        CancellationToken cancellationToken)
    {
        int dims = runtime.Policy.Dimensions;
        long now = runtime.TtlNow;
        var users = userIds.Span;
        var vectors = destination.Span;
        var resultSpan = results.Span;
        int[]? misses = null;
        int missCount = 0;
        long ttl = runtime.DirectTtlFor(options);
        var direct = options.ForceRefresh ? null : runtime.Direct;
        bool measured = runtime.MeasuresAges;
        int hits = 0;
        Unsafe.SkipInit(out PrefetchBuffer<int> candidateBuffer); // not stackalloc (see PrefetchBuffer); Prefetch writes each one read
        Span<int> candidates = candidateBuffer;
        for (int i = 0; i < users.Length; i++)
        {
            int inGroup = i % EmbeddingTier.PrefetchBatch;
            if (direct is not null && inGroup == 0)
            {
                // A batch knows its keys up front: start every next user's loads before copying the first, and keep the
                // slots found so that each user is hashed and probed once.
                direct.Prefetch(users[i..], candidates);
            }

            if (direct is not null && runtime.TryReadDirect(users[i], candidates[inGroup], now, ttl, vectors.Slice(i * dims, dims), out resultSpan[i]))
            {
                hits++;
                if (measured)
                {
                    runtime.RecordHitAge(resultSpan[i]);
                }
            }
            else
            {
                misses ??= ArrayPool<int>.Shared.Rent(users.Length - i);
                misses[missCount++] = i;
            }
        }

        runtime.CountDirectHits(hits); // one add for the batch, not one per user

        return misses is null
            ? default
            : ServeMissesAsync(runtime, userIds, misses, missCount, destination, results, options, cancellationToken);
    }

    /// <summary>A request during a rollout's gradual switch: the users the switch has reached are served by the next
    /// version, the others by the current one, each part as its own request (a transition's path, so it may allocate).</summary>
    private async Task GetManySwitchingAsync(
        ModelRuntime runtime, ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, EmbeddingRequestOptions options,
        CancellationToken cancellationToken)
    {
        int dims = runtime.Policy.Dimensions;
        var byRuntime = new Dictionary<ModelRuntime, List<int>>(2);
        for (int i = 0; i < userIds.Length; i++)
        {
            var serving = runtime.RouteFor(userIds.Span[i]);
            if (!byRuntime.TryGetValue(serving, out var positions))
            {
                byRuntime[serving] = positions = [];
            }

            positions.Add(i);
        }

        var parts = byRuntime.Select(async part =>
        {
            var positions = part.Value;
            var users = positions.Select(p => userIds.Span[p]).ToArray();
            var vectors = new float[users.Length * dims];
            var partResults = new EmbeddingResult[users.Length];
            await GetManyOn(part.Key, users, vectors, partResults, options, cancellationToken).ConfigureAwait(false);
            for (int j = 0; j < positions.Count; j++)
            {
                vectors.AsSpan(j * dims, dims).CopyTo(destination.Span.Slice(positions[j] * dims, dims));
                results.Span[positions[j]] = partResults[j];
            }
        }).ToArray();
        await Task.WhenAll(parts).ConfigureAwait(false);
    }

    private static void CheckOptions(EmbeddingRequestOptions options)
    {
        if (options.MaxAge is { } maxAge && maxAge < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options), maxAge, $"EmbeddingRequestOptions.MaxAge must not be negative (got {maxAge}).");
        }
    }

    /// <summary>A single user's miss, as its caller receives it (see <see cref="CallerContinuation"/>). Not inlined, so the
    /// hit path's code stays as small as it was.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ValueTask<EmbeddingResult> MissAsync(
        ModelRuntime runtime, long userId, Memory<float> destination, EmbeddingRequestOptions options, CancellationToken cancellationToken) =>
        CallerContinuation.Of(WaitForMissAsync(runtime, userId, destination, options, cancellationToken), _dispatcher.RunsWaitersInline);

    // ValueTask, not Task: a miss that completes synchronously (an inline call of a synchronous tower) allocates no task.
    // Not a pooling builder: the caller receives this ValueTask, and a pooled one misused (awaited twice) could hand back
    // another request's result.
    private async ValueTask<EmbeddingResult> WaitForMissAsync(
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

            // Reused when the miss completes on this thread: an inline miss allocates only its pending record.
            var buffers = SingleMissBuffers.Rent(userId);
            try
            {
                await runtime.ServeMissesAsync(buffers.User, buffers.Position, 1, destination, buffers.Result, options, cancellationToken).ConfigureAwait(false);
                var result = buffers.Result[0];
                buffers.Return();
                return result;
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

    /// <summary>A request's misses, as its caller receives them (see <see cref="CallerContinuation"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private ValueTask ServeMissesAsync(
        ModelRuntime runtime, ReadOnlyMemory<long> userIds, int[] misses, int missCount, Memory<float> destination, Memory<EmbeddingResult> results,
        EmbeddingRequestOptions options, CancellationToken cancellationToken) =>
        CallerContinuation.Of(WaitForMissesAsync(runtime, userIds, misses, missCount, destination, results, options, cancellationToken), _dispatcher.RunsWaitersInline);

    private async ValueTask WaitForMissesAsync(
        ModelRuntime runtime, ReadOnlyMemory<long> userIds, int[] misses, int missCount, Memory<float> destination, Memory<EmbeddingResult> results,
        EmbeddingRequestOptions options, CancellationToken cancellationToken)
    {
        try
        {
            if (!_requests.TryAcquire())
            {
                ThrowHelper.ThrowDisposed();
            }

            try
            {
                if (!runtime.State.TryEnter())
                {
                    // A reload retired this version after the direct lookups: answer the whole batch from the model's current
                    // version, so one call never mixes two versions' settings.
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
        finally
        {
            ArrayPool<int>.Shared.Return(misses); // rented by GetManyOn for this request: returned once, on every path
        }
    }
}
