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
