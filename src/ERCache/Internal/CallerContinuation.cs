using System.Runtime.CompilerServices;

namespace ERCache.Internal;

/// <summary>
/// The boundary between a request's own code and its caller's: a request that did not complete synchronously is
/// finished on whichever thread completed its inference (an inference thread, usually), and from there its caller must
/// not continue inline, or the caller's code (the rest of a ranking request) would run on that thread and hold it.
/// </summary>
/// <remarks>
/// The caller's task completes with its continuations run asynchronously: an awaiting caller continues on the thread
/// pool, and a caller blocked on the task is woken directly (the runtime wakes a blocked waiter without a thread-pool
/// hop). One task and a small object per request that waited; a request that completed synchronously returns as is.
/// </remarks>
internal static class CallerContinuation
{
    /// <summary><paramref name="request"/> as is when it completed or when <paramref name="callersInline"/> (a
    /// single-threaded simulation's dispatcher); otherwise a task that completes as it does, continuing its caller
    /// asynchronously.</summary>
    public static ValueTask<T> Of<T>(ValueTask<T> request, bool callersInline) =>
        request.IsCompleted || callersInline ? request : new ValueTask<T>(new Completion<T>(request).Task);

    /// <inheritdoc cref="Of{T}(ValueTask{T}, bool)"/>
    public static ValueTask Of(ValueTask request, bool callersInline) =>
        request.IsCompleted || callersInline ? request : new ValueTask(new Completion(request).Task);

    /// <summary>Completes its task as the request completes: with its result, its exception, or cancelled with the
    /// request's token.</summary>
    private sealed class Completion<T> : TaskCompletionSource<T>
    {
        private readonly ConfiguredValueTaskAwaitable<T>.ConfiguredValueTaskAwaiter _request;

        public Completion(ValueTask<T> request)
            : base(TaskCreationOptions.RunContinuationsAsynchronously)
        {
            _request = request.ConfigureAwait(false).GetAwaiter();
            _request.UnsafeOnCompleted(Finish);
        }

        private void Finish()
        {
            try
            {
                TrySetResult(_request.GetResult());
            }
            catch (OperationCanceledException canceled)
            {
                TrySetCanceled(canceled.CancellationToken);
            }
            catch (Exception failure)
            {
                TrySetException(failure);
            }
        }
    }

    /// <inheritdoc cref="Completion{T}"/>
    private sealed class Completion : TaskCompletionSource
    {
        private readonly ConfiguredValueTaskAwaitable.ConfiguredValueTaskAwaiter _request;

        public Completion(ValueTask request)
            : base(TaskCreationOptions.RunContinuationsAsynchronously)
        {
            _request = request.ConfigureAwait(false).GetAwaiter();
            _request.UnsafeOnCompleted(Finish);
        }

        private void Finish()
        {
            try
            {
                _request.GetResult();
                TrySetResult();
            }
            catch (OperationCanceledException canceled)
            {
                TrySetCanceled(canceled.CancellationToken);
            }
            catch (Exception failure)
            {
                TrySetException(failure);
            }
        }
    }
}
