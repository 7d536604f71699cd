using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The hammer tests' threads: an exception on one fails its test instead of ending the test host.</summary>
public sealed class CheckedThreadTests
{
    [Fact]
    public void A_body_that_throws_fails_its_Join_with_the_same_exception()
    {
        var thread = CheckedThread.Start(() => throw new InvalidOperationException("from the body"));

        var thrown = Assert.Throws<InvalidOperationException>(thread.Join);
        Assert.Equal("from the body", thrown.Message);
    }

    [Fact]
    public void A_worker_that_throws_fails_the_run_and_ends_the_loops_that_run_while_workers_work()
    {
        long loops = 0;
        var thrown = Assert.Throws<InvalidOperationException>(() => CheckedThread.RunAll(
            [() => { }, () => throw new InvalidOperationException("worker")],
            working =>
            {
                while (working())
                {
                    Interlocked.Increment(ref loops); // would spin forever if the thrown worker still counted as working
                }
            }));

        Assert.Equal("worker", thrown.Message); // reached only once the loop has ended
    }

    [Fact]
    public void Several_bodies_that_throw_fail_the_run_with_every_exception()
    {
        var thrown = Assert.Throws<AggregateException>(() => CheckedThread.RunAll(
            [() => throw new InvalidOperationException("first"), () => { }],
            _ => throw new ArgumentException("loop")));

        Assert.Equal(["first", "loop"], thrown.InnerExceptions.Select(e => e.Message).Order());
    }

    [Fact]
    public void Bodies_that_return_leave_the_run_without_an_exception_after_every_one_ran()
    {
        int ran = 0;
        CheckedThread.RunAll(Enumerable.Range(0, 4).Select(_ => (Action)(() => Interlocked.Increment(ref ran))), working =>
        {
            while (working())
            {
            }

            Interlocked.Increment(ref ran);
        });

        Assert.Equal(5, ran);
    }
}
