using Polly;
using Polly.CircuitBreaker;

namespace ERCache.Internal;

/// <summary>
/// A model's circuit breaker, built on Polly.Core's circuit-breaker strategy.
/// </summary>
/// <remarks>
/// Why Polly: its breaker is well kept and well tested, takes our <see cref="TimeProvider"/> (so tests drive the
/// sampling window and break duration with a manual clock), and implements the half-open probe (one call through,
/// the rest rejected) that is easy to get subtly wrong. We use only the breaker, not Polly's timeout or
/// retry: the deadline is per caller, not per delegate call, and retrying a struggling model is what a cache
/// in front of it must never do.
/// </remarks>
internal sealed class ModelCircuitBreaker
{
    // The outcome of a call that completed but produced nothing usable: the breaker counts it as a failure, the
    // caller sees a completed call (it classifies the rows itself).
    private static readonly object Unusable = new();
    private readonly ResiliencePipeline _pipeline;
    private readonly CircuitBreakerStateProvider _state = new();

    public ModelCircuitBreaker(CircuitBreakerSettings settings, TimeProvider timeProvider, Action<CircuitState>? onStateChanged = null)
    {
        Settings = settings;
        _pipeline = new ResiliencePipelineBuilder { TimeProvider = timeProvider }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                FailureRatio = settings.FailureRatio,
                MinimumThroughput = settings.MinimumThroughput,
                SamplingDuration = settings.SamplingDuration,
                BreakDuration = settings.BreakDuration,
                StateProvider = _state,

                // Every failure of the delegate counts, timeouts at the hard limit included (they arrive as
                // TimeoutException; Polly's default predicate would ignore cancellations), and so does a call judged
                // unusable.
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Exception is not null || ReferenceEquals(args.Outcome.Result, Unusable)),
                OnOpened = _ => Notify(onStateChanged, CircuitState.Open),
                OnHalfOpened = _ => Notify(onStateChanged, CircuitState.HalfOpen),
                OnClosed = _ => Notify(onStateChanged, CircuitState.Closed),
            })
            .Build();
    }

    /// <summary>The settings this breaker was built with.</summary>
    public CircuitBreakerSettings Settings { get; }

    public CircuitState State => _state.CircuitState;

    /// <summary>Open (or isolated): calls are rejected without reaching the delegate.</summary>
    public bool IsOpen => _state.CircuitState is CircuitState.Open or CircuitState.Isolated;

    /// <summary>Runs <paramref name="call"/> through the breaker; throws <see cref="BrokenCircuitException"/> when open.</summary>
    public ValueTask<TResult> ExecuteAsync<TResult, TState>(Func<TState, CancellationToken, ValueTask<TResult>> call, TState state, CancellationToken cancellationToken) =>
        _pipeline.ExecuteAsync(call, state, cancellationToken);

    /// <summary>
    /// Runs <paramref name="call"/> through the breaker: completes as the call does, or faulted with
    /// <see cref="BrokenCircuitException"/> when open. Built on Polly's outcome API (a pooled context, outcomes instead of
    /// thrown exceptions), so a call that completes synchronously through a closed breaker is answered synchronously,
    /// without the two async state machines of <see cref="ResiliencePipeline.ExecuteAsync{TState}(Func{TState, CancellationToken, ValueTask}, TState, CancellationToken)"/>:
    /// an inline miss makes one such call per user.
    /// </summary>
    /// <param name="call">The call.</param>
    /// <param name="state">The call's state.</param>
    /// <param name="cancellationToken">Passed to the call.</param>
    /// <param name="isUnusable">Judges a call that completed: true counts it as a failure toward opening the circuit,
    /// though the caller still sees it complete (an inference that returned only invalid vectors).</param>
    public ValueTask ExecuteAsync<TState>(Func<TState, CancellationToken, ValueTask> call, TState state, CancellationToken cancellationToken, Func<TState, bool>? isUnusable = null)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        ValueTask<Outcome<object?>> running;
        try
        {
            running = _pipeline.ExecuteOutcomeAsync(static (context, s) => Run(s.call, s.state, s.isUnusable, context.CancellationToken), context, (call, state, isUnusable));
        }
        catch
        {
            ResilienceContextPool.Shared.Return(context);
            throw;
        }

        if (!running.IsCompletedSuccessfully)
        {
            return AwaitOutcomeAsync(running, context);
        }

        var outcome = running.Result;
        ResilienceContextPool.Shared.Return(context);
        return outcome.Exception is { } failure ? ValueTask.FromException(failure) : default;
    }

    /// <summary>The call as an outcome: its exception is returned, not thrown, for the breaker to count. A reference-type
    /// result, so that Polly's non-generic breaker strategy takes the outcome without boxing it; <see cref="Unusable"/>
    /// for a completed call <paramref name="isUnusable"/> rejects.</summary>
    private static ValueTask<Outcome<object?>> Run<TState>(Func<TState, CancellationToken, ValueTask> call, TState state, Func<TState, bool>? isUnusable, CancellationToken cancellationToken)
    {
        ValueTask running;
        try
        {
            running = call(state, cancellationToken);
        }
        catch (Exception ex)
        {
            return new(Outcome.FromException<object?>(ex));
        }

        if (!running.IsCompletedSuccessfully)
        {
            return AwaitCallAsync(running, state, isUnusable);
        }

        running.GetAwaiter().GetResult(); // completes (and releases) a pooled value-task source
        return new(Completed(state, isUnusable));
    }

    private static async ValueTask<Outcome<object?>> AwaitCallAsync<TState>(ValueTask running, TState state, Func<TState, bool>? isUnusable)
    {
        try
        {
            await running.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            return Outcome.FromException<object?>(ex);
        }

        return Completed(state, isUnusable);
    }

    private static Outcome<object?> Completed<TState>(TState state, Func<TState, bool>? isUnusable) =>
        Outcome.FromResult<object?>(isUnusable is not null && isUnusable(state) ? Unusable : null);

    private static async ValueTask AwaitOutcomeAsync(ValueTask<Outcome<object?>> running, ResilienceContext context)
    {
        Outcome<object?> outcome;
        try
        {
            outcome = await running.ConfigureAwait(false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }

        outcome.ThrowIfException();
    }

    private static ValueTask Notify(Action<CircuitState>? onStateChanged, CircuitState state)
    {
        onStateChanged?.Invoke(state);
        return ValueTask.CompletedTask;
    }
}
