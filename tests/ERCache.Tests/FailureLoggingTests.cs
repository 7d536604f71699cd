using ERCache.Inference;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>A failed call is logged after its callers are answered, so a slow log sink cannot change their answer.</summary>
public sealed class FailureLoggingTests
{
    [Fact]
    public async Task A_throwing_tower_is_reported_as_an_error_even_when_logging_it_outlasts_the_deadline()
    {
        // The log sink takes longer than the request's deadline (it moves the clock 1 s while it writes). Logged before
        // the callers were answered, the first failure was reported as a Timeout; now it is the Error it was.
        var clock = new FakeTimeProvider();
        var logger = new SlowLogger(clock, TimeSpan.FromSeconds(1));
        var release = new TaskCompletionSource();
        var tower = new TestTower { Gate = release.Task, Whole = (_, _) => throw new InvalidOperationException("tower down") };
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        options.Models["ctr"].Failover.Enabled = false;
        TestThread.LeaveSynchronizationContext();
        using var cache = EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, Logger = logger });

        var pending = cache.GetAsync("ctr", 7, new float[4]).AsTask(); // the caller now waits for its deadline
        Assert.False(pending.IsCompleted);
        release.SetResult(); // the tower throws on this thread; the deadline passes while the failure is logged
        var result = await pending;

        Assert.Equal(EmbeddingSource.Fallback, result.Source);
        Assert.Equal(InferenceFailureCause.Error, result.FailureCause);
        var entry = Assert.Single(logger.Failures);
        Assert.Contains("tower down", entry, StringComparison.Ordinal);
    }

    /// <summary>A sink that takes <paramref name="delay"/> of the test's clock to write an entry with an exception.</summary>
    private sealed class SlowLogger(FakeTimeProvider clock, TimeSpan delay) : ILogger
    {
        public List<string> Failures { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (exception is not null)
            {
                clock.Advance(delay);
                Failures.Add($"{formatter(state, exception)} {exception?.Message}");
            }
        }
    }
}
