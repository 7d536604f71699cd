using ERCache.Internal;
using Microsoft.Extensions.Time.Testing;
using Polly.CircuitBreaker;

namespace ERCache.Tests;

/// <summary><see cref="ModelCircuitBreaker"/>'s calls through Polly's outcome API: every way a call can fail counts, a
/// call that completes at once is answered at once, and an open circuit rejects without calling.</summary>
public sealed class ModelCircuitBreakerTests
{
    private static ModelCircuitBreaker Breaker(FakeTimeProvider clock) =>
        new(new CircuitBreakerSettings(Enabled: true, FailureRatio: 0.5, MinimumThroughput: 4, SamplingDuration: TimeSpan.FromSeconds(10), BreakDuration: TimeSpan.FromSeconds(5)), clock);

    [Theory]
    [InlineData("throws")]
    [InlineData("faults at once")]
    [InlineData("faults later")]
    public async Task Every_way_a_call_fails_reaches_the_caller_and_counts_toward_opening(string how)
    {
        var clock = new FakeTimeProvider();
        var breaker = Breaker(clock);
        var failure = new InvalidOperationException("tower down");
        var seen = new List<Exception>();
        for (int i = 0; i < 4; i++)
        {
            var later = new TaskCompletionSource();
            var call = breaker.ExecuteAsync<Exception>(
                (e, _) => how switch
                {
                    "throws" => throw e,
                    "faults at once" => ValueTask.FromException(e),
                    _ => new ValueTask(later.Task),
                },
                failure,
                CancellationToken.None);
            later.TrySetException(failure);
            seen.Add(await Assert.ThrowsAsync<InvalidOperationException>(async () => await call));
        }

        int calls = 0;
        var rejected = breaker.ExecuteAsync<object?>((_, _) => { calls++; return default; }, null, CancellationToken.None);

        Assert.All(seen, e => Assert.Same(failure, e));
        Assert.Equal(CircuitState.Open, breaker.State);
        Assert.True(rejected.IsFaulted);
        await Assert.ThrowsAsync<BrokenCircuitException>(async () => await rejected);
        Assert.Equal(0, calls);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_call_judged_unusable_completes_for_its_caller_and_counts_toward_opening(bool atOnce)
    {
        var clock = new FakeTimeProvider();
        var breaker = Breaker(clock);
        int judged = 0;
        for (int i = 0; i < 4; i++)
        {
            var later = new TaskCompletionSource();
            var call = breaker.ExecuteAsync<object?>(
                (_, _) => atOnce ? default : new ValueTask(later.Task),
                null,
                CancellationToken.None,
                _ =>
                {
                    judged++;
                    return true;
                });
            Assert.True(atOnce || !call.IsCompleted); // judged only once the call completes
            later.SetResult();
            await call; // completes: the caller classifies the call's output itself
        }

        int calls = 0;
        var rejected = breaker.ExecuteAsync<object?>((_, _) => { calls++; return default; }, null, CancellationToken.None);

        Assert.Equal(4, judged);
        Assert.Equal(CircuitState.Open, breaker.State);
        await Assert.ThrowsAsync<BrokenCircuitException>(async () => await rejected);
        Assert.Equal(0, calls);
    }

    [Fact]
    public async Task Calls_judged_usable_keep_it_closed_and_a_failed_call_is_not_judged()
    {
        var clock = new FakeTimeProvider();
        var breaker = Breaker(clock);
        int judged = 0;
        Func<object?, bool> usable = _ =>
        {
            judged++;
            return false;
        };
        for (int i = 0; i < 10; i++)
        {
            await breaker.ExecuteAsync<object?>((_, _) => default, null, CancellationToken.None, usable);
        }

        await Assert.ThrowsAsync<InvalidOperationException>(async () =>
            await breaker.ExecuteAsync<object?>((_, _) => ValueTask.FromException(new InvalidOperationException()), null, CancellationToken.None, usable));

        Assert.Equal(10, judged);
        Assert.Equal(CircuitState.Closed, breaker.State);
    }

    [Fact]
    public async Task A_call_that_completes_at_once_is_answered_at_once_and_successes_keep_it_closed()
    {
        var clock = new FakeTimeProvider();
        var breaker = Breaker(clock);
        int calls = 0;
        for (int i = 0; i < 10; i++)
        {
            var call = breaker.ExecuteAsync<object?>((_, _) => { calls++; return default; }, null, CancellationToken.None);
            Assert.True(call.IsCompletedSuccessfully);
            await call;
        }

        var later = new TaskCompletionSource();
        var pending = breaker.ExecuteAsync<object?>((_, _) => new ValueTask(later.Task), null, CancellationToken.None);
        Assert.False(pending.IsCompleted);
        later.SetResult();
        await pending;

        Assert.Equal(10, calls);
        Assert.Equal(CircuitState.Closed, breaker.State);
    }
}
