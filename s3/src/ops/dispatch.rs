//! The `S3` trait of s3s, implemented for [`HoardS3`]: each operation, with its span, handed to the part that
//! serves it.

use s3s::S3;

use super::*;

#[async_trait::async_trait]
impl S3 for HoardS3 {
    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket::create_bucket(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket::delete_bucket(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket::head_bucket(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        bucket::get_bucket_location(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        bucket::put_bucket_encryption(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        bucket::get_bucket_encryption(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        bucket::delete_bucket_encryption(self, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        bucket::list_buckets(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        bucket::get_object_lock_configuration(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        bucket::put_object_lock_configuration(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        bucket::get_object_retention(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        bucket::put_object_retention(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        bucket::get_object_legal_hold(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        bucket::put_object_legal_hold(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        object::put_object(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        object::get_object(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        object::head_object(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        object::delete_object(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let ctx = self.ctx.clone();
        let secure = secure_of(&req.extensions);
        let check = req.extensions.get::<crate::access::ReadAclCheck>().cloned();
        session::run(&self.sessions, async move { object_attributes(&ctx, req.input, secure, check).await }).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        versions::put_bucket_versioning(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        versions::get_bucket_versioning(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        versions::list_object_versions(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        object::delete_objects(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        object::copy_object(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        listing::list_objects(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        listing::list_objects_v2(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create_multipart_upload(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key, part = req.input.part_number))]
    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key, part = req.input.part_number))]
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete_multipart_upload(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort_multipart_upload(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_multipart_uploads(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_acl(&self, req: S3Request<PutBucketAclInput>) -> S3Result<S3Response<PutBucketAclOutput>> {
        permissions::put_bucket_acl(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_acl(&self, req: S3Request<GetBucketAclInput>) -> S3Result<S3Response<GetBucketAclOutput>> {
        permissions::get_bucket_acl(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object_acl(&self, req: S3Request<PutObjectAclInput>) -> S3Result<S3Response<PutObjectAclOutput>> {
        permissions::put_object_acl(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_acl(&self, req: S3Request<GetObjectAclInput>) -> S3Result<S3Response<GetObjectAclOutput>> {
        permissions::get_object_acl(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        permissions::put_bucket_policy(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        permissions::get_bucket_policy(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        permissions::delete_bucket_policy(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_cors(&self, req: S3Request<PutBucketCorsInput>) -> S3Result<S3Response<PutBucketCorsOutput>> {
        cors::put_bucket_cors(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_cors(&self, req: S3Request<GetBucketCorsInput>) -> S3Result<S3Response<GetBucketCorsOutput>> {
        cors::get_bucket_cors(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        cors::delete_bucket_cors(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        permissions::get_bucket_policy_status(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        permissions::put_public_access_block(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        permissions::get_public_access_block(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        permissions::delete_public_access_block(self, req).await
    }
}
