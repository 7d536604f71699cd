using ERCache.Inference;
using ERCache.Internal;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>What the delegate got wrong is logged: a failed call after its callers are answered (so a slow log sink
/// cannot change their answer), invalid vectors by kind, rate-limited.</summary>
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

    [Fact]
    public async Task Invalid_vectors_are_logged_by_kind_naming_the_row_and_what_was_found_a_few_lines_a_minute()
    {
        var clock = new FakeTimeProvider();
        var logs = new FakeLogCollector();
        var tower = new TestTower();
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        TestThread.LeaveSynchronizationContext();
        using var cache = EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, Logger = new FakeLogger<EmbeddingCache>(logs) });
        string[] Warnings() => [.. logs.GetSnapshot().Where(r => r.Id.Id == 27).Select(r => r.Message)];
        async Task<InferenceFailureCause> Request(long user) => (await cache.GetAsync("ctr", user, new float[4])).FailureCause;

        // Three kinds, each named with the row and what was found.
        tower.Whole = (b, _) => { b.SetRow(0, [1f, 2f, 3f]); return ValueTask.CompletedTask; };
        Assert.Equal(InferenceFailureCause.InvalidVector, await Request(1));
        tower.Whole = (b, _) => { b.SetRow(0, [1f, 2f, float.PositiveInfinity, 4f]); return ValueTask.CompletedTask; };
        Assert.Equal(InferenceFailureCause.InvalidVector, await Request(2));
        tower.Whole = (_, _) => ValueTask.CompletedTask;
        Assert.Equal(InferenceFailureCause.InvalidVector, await Request(3));
        Assert.Collection(
            Warnings(),
            w => Assert.Contains("model 'ctr' returned an invalid vector in row 0 of a batch of 1: a vector of 3 floats for a model of 4 dimensions", w, StringComparison.Ordinal),
            w => Assert.Contains("value Infinity at index 2", w, StringComparison.Ordinal),
            w => Assert.Contains("the row was never written", w, StringComparison.Ordinal));

        // The same kind again within 10 s is counted, not logged; after 10 s one line says how many were left out.
        tower.Whole = (b, _) => { b.SetRow(0, [1f]); return ValueTask.CompletedTask; };
        for (long user = 10; user < 15; user++)
        {
            await Request(user);
        }

        Assert.Equal(3, Warnings().Length);
        clock.Advance(LogThrottle.Interval);
        await Request(20);
        Assert.Equal(4, Warnings().Length);
        Assert.Contains("a vector of 1 floats for a model of 4 dimensions", Warnings()[3], StringComparison.Ordinal);
        Assert.Contains("(5 more of this kind since the last such line.)", Warnings()[3], StringComparison.Ordinal);
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
