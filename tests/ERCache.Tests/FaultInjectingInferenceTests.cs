using Microsoft.Extensions.Time.Testing;
using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

public sealed class FaultInjectingInferenceTests
{
    private static InferenceBatch Batch(int dims = 4)
    {
        var b = new InferenceBatch("m", "v", dims, 1);
        b.UsersToFill[0] = 5;
        return b;
    }

    [Fact]
    public async Task With_no_faults_it_passes_straight_through()
    {
        var inner = new TestTower();
        var faults = new FaultInjectingInference(inner);
        var b = Batch();

        await faults.InferAsync(b, CancellationToken.None);

        Assert.Equal(InferenceFailureCause.None, FailureClassifier.OfRow(b.StatusOf(0), b.Row(0)));
        Assert.Equal(1, inner.CallCount);
        Assert.Equal(0, faults.Injected);
    }

    [Fact]
    public async Task Each_fault_kind_does_what_it_says()
    {
        var faults = new FaultInjectingInference(new TestTower(), new FaultSettings { ErrorRate = 1 });
        await Assert.ThrowsAsync<InjectedFaultException>(() => faults.InferAsync(Batch(), CancellationToken.None).AsTask());

        foreach (var settings in new[] { new FaultSettings { NaNRate = 1 }, new FaultSettings { InfinityRate = 1 }, new FaultSettings { WrongLengthRate = 1 } })
        {
            faults.Faults = settings; // switched at run time
            var b = Batch();
            await faults.InferAsync(b, CancellationToken.None);
            Assert.Equal(InferenceFailureCause.InvalidVector, FailureClassifier.OfRow(b.StatusOf(0), b.Row(0)));
        }

        Assert.Equal(4, faults.Injected);
    }

    [Fact]
    public async Task Hangs_and_latency_follow_the_given_clock_and_honour_cancellation()
    {
        var clock = new FakeTimeProvider();
        var faults = new FaultInjectingInference(new TestTower(), new FaultSettings { Latency = _ => TimeSpan.FromMilliseconds(30) }, clock);

        var slow = faults.InferAsync(Batch(), CancellationToken.None).AsTask();
        clock.Advance(TimeSpan.FromMilliseconds(29));
        Assert.False(slow.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        await slow.WaitAsync(TimeSpan.FromSeconds(10));

        faults.Faults = new FaultSettings { HangRate = 1 };
        using var cts = new CancellationTokenSource();
        var hung = faults.InferAsync(Batch(), cts.Token).AsTask();
        clock.Advance(TimeSpan.FromDays(1));
        Assert.False(hung.IsCompleted);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => hung.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Rates_are_honoured_over_many_calls()
    {
        var faults = new FaultInjectingInference(new TestTower(), new FaultSettings { ErrorRate = 0.25 }, seed: 11);
        int errors = 0;
        for (int i = 0; i < 4000; i++)
        {
            try
            {
                await faults.InferAsync(Batch(), CancellationToken.None);
            }
            catch (InjectedFaultException)
            {
                errors++;
            }
        }

        Assert.InRange(errors, 900, 1100);
    }

    [Fact]
    public void Latency_distributions_have_the_documented_shape()
    {
        var rng = new Random(1);
        var uniform = FaultSettings.Uniform(TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(2));
        var logNormal = FaultSettings.LogNormal(TimeSpan.FromMilliseconds(10), 0.5);
        var u = Enumerable.Range(0, 2000).Select(_ => uniform(rng).TotalMilliseconds).ToArray();
        var l = Enumerable.Range(0, 2001).Select(_ => logNormal(rng).TotalMilliseconds).Order().ToArray();

        Assert.All(u, v => Assert.InRange(v, 8, 12));
        Assert.InRange(l[1000], 9, 11); // median
        Assert.True(l[^20] > 20);        // a long right tail
    }
}
